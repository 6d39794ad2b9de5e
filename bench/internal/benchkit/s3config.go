package benchkit

import "fmt"

// S3Policy auto-approves the S3 benchmarks' scope: reads, writes and
// listings under bench/ on the target S3Config names.
const S3Policy = `@id("s3bench")
@approval("auto")
permit (principal in Group::"bench-team", action in [Action::"s3:GetObject", Action::"s3:PutObject", Action::"s3:ListBucket"], resource == Target::"aws-bench")
when { context.resource like "arn:aws:s3:::bench/*" };
`

// S3Config is `airlock serve`'s configuration for the S3 benchmarks: s's
// API and agent, the AWS gateway listening on gatewayAddr, and one aws
// target, aws-bench, whose endpoint is upstreamURL, with the upstream's
// keys read from AWS_BENCH_ACCESS_KEY_ID and AWS_BENCH_SECRET_ACCESS_KEY.
func S3Config(s *Server, gatewayAddr, upstreamURL string) string {
	return fmt.Sprintf(`data_dir: ./data
listen:
  api: %s
  aws: %s
identities:
  - name: bench-bot
    kind: agent
    owner: bench-team
    key_sha256: "%s"
%stargets:
  - name: aws-bench
    kind: aws
    account: "111122223333"
    region: us-east-1
    endpoint: %s
    credentials:
      access_key_id_env: AWS_BENCH_ACCESS_KEY_ID
      secret_access_key_env: AWS_BENCH_SECRET_ACCESS_KEY
policies: ./policies
`, s.API, gatewayAddr, s.BotSHA, s.OpsIdentity(), upstreamURL)
}
