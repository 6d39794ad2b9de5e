package awsgw

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/awsfake"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
)

// BenchmarkServiceGateway compares a DynamoDB GetItem through the gateway
// (body read and hashed, awsops mapping, scope, durable record, re-signed
// for the dynamodb service) with S3's 1 KiB GET through it, each beside
// the same call made directly to its upstream, 8 clients in parallel, in
// one run. Both upstreams verify SigV4. cpu-µs/op is the process's CPU per
// call (clients, gateway and upstream together, as in BenchmarkGateway):
// a gateway case's figure minus its direct case's is what the gateway
// adds to a call.
func BenchmarkServiceGateway(b *testing.B) {
	for _, bc := range []struct {
		name   string
		s3     bool
		direct bool
	}{
		{"S3Get1KiB/direct", true, true},
		{"S3Get1KiB/gateway", true, false},
		{"DynamoDBGetItem/direct", false, true},
		{"DynamoDBGetItem/gateway", false, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			auth := gatewaytest.New()
			var s3up *fakeS3
			var ddb *awsfake.Server
			pprof.Do(context.Background(), pprof.Labels("side", "upstream"), func(context.Context) {
				s3up = newFakeS3(b, upstreamAK, upstreamSK)
				ddb = awsfake.Start("dynamodb", testRegion, upstreamAK, upstreamSK)
			})
			defer ddb.Close()
			s3up.forgetful = true
			ddb.Forget()
			gw, err := New(Options{Authority: auth, Targets: []Target{{Name: testTarget, Account: testAccount, Region: testRegion, Endpoint: s3up.srv.URL,
				Endpoints: map[string]string{"dynamodb": ddb.URL}, AccessKeyID: upstreamAK, SecretAccessKey: upstreamSK}}})
			if err != nil {
				b.Fatal(err)
			}
			var srv *httptest.Server
			pprof.Do(context.Background(), pprof.Labels("side", "gateway"), func(context.Context) { srv = newLoopbackServer(gw) })
			defer func() { srv.Close(); gw.Close() }()
			g := auth.Add(gatewaytest.Spec{Target: testTarget, TargetKind: "aws", Account: testAccount,
				Scope: []string{walkScope, "dynamodb:GetItem arn:aws:dynamodb:" + testRegion + ":" + testAccount + ":table/orders"}})
			s3up.put("logs/app/obj", make([]byte, 1<<10))
			endpoint, creds := srv.URL, credentials.NewStaticCredentialsProvider(g.CredentialID, g.Secret, g.SessionToken)
			if bc.direct {
				endpoint, creds = s3up.srv.URL, credentials.NewStaticCredentialsProvider(upstreamAK, upstreamSK, "")
				if !bc.s3 {
					endpoint = ddb.URL
				}
			}
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr}
			var op func() error
			if bc.s3 {
				cl := s3.New(s3.Options{Region: testRegion, BaseEndpoint: aws.String(endpoint), UsePathStyle: true, Credentials: creds, HTTPClient: hc})
				op = func() error {
					out, err := cl.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/obj")})
					if err != nil {
						return err
					}
					_, err = io.Copy(io.Discard, out.Body)
					out.Body.Close()
					return err
				}
			} else {
				cl := dynamodb.New(dynamodb.Options{Region: testRegion, BaseEndpoint: aws.String(endpoint), Credentials: creds, HTTPClient: hc})
				in := &dynamodb.GetItemInput{TableName: aws.String("orders"), Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: "42"}}}
				op = func() error {
					_, err := cl.GetItem(context.Background(), in)
					return err
				}
			}
			pprof.Do(context.Background(), pprof.Labels("side", "client"), func(context.Context) { err = op() })
			if err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(4)
			cpu0 := processCPU(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("side", "client")))
				for pb.Next() {
					if err := op(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
