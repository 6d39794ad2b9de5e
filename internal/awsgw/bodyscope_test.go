package awsgw

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// stallBody sends the first bytes of the body the SDK signed, then the
// rest stallTime later: a gateway that reads the body before it checks
// the scope decides only then.
func stallBody(st *middleware.Stack) error {
	return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("StallBody", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		if req, ok := in.Request.(*smithyhttp.Request); ok && req.GetStream() != nil {
			rest := req.GetStream()
			r, err := req.SetStream(io.MultiReader(io.LimitReader(rest, 8), &pausedBody{r: rest}))
			if err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, err
			}
			in.Request = r
		}
		return next.HandleFinalize(ctx, in)
	}), middleware.After)
}

// pausedBody is r after a pause of stallTime.
type pausedBody struct {
	r      io.Reader
	paused bool
}

func (s *pausedBody) Read(p []byte) (int, error) {
	if !s.paused {
		s.paused = true
		time.Sleep(stallTime)
	}
	return s.r.Read(p)
}

// stallTime is how long a stalled body pauses.
const stallTime = 4 * time.Second

// TestConfigBodyOutOfScopeNotRead: a bucket lifecycle, CORS or tagging
// PUT that the grant does not allow, or a DeleteObjects from a grant that
// may delete nothing in the bucket, is refused before its body is read.
// The SDK's body stalls after a few bytes; the refusal is still decided
// (and recorded) at once, through the gateway in front of versitygw, where the gateway used
// to wait for the body (clientIdleTime for each read), then read and
// verify up to s3iam.MaxBodyCheckBytes of it, before it looked at the
// grant's scope.
func TestConfigBodyOutOfScopeNotRead(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant("s3:GetObject,s3:ListBucket arn:aws:s3:::logs/*", "s3:PutBucketPolicy arn:aws:s3:::logs")
	cl := e.client(g)
	stall := stallBody

	calls := map[string]func(context.Context) error{
		"PutBucketLifecycleConfiguration": func(ctx context.Context) error {
			_, err := cl.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: aws.String("logs"),
				LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: []types.LifecycleRule{{ID: aws.String("r"), Status: types.ExpirationStatusEnabled,
					Filter: &types.LifecycleRuleFilter{Prefix: aws.String("app/")}, Expiration: &types.LifecycleExpiration{Days: aws.Int32(1)}}}}}, s3.WithAPIOptions(stall))
			return err
		},
		"PutBucketCors": func(ctx context.Context) error {
			_, err := cl.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: aws.String("logs"),
				CORSConfiguration: &types.CORSConfiguration{CORSRules: []types.CORSRule{{AllowedMethods: []string{"GET"}, AllowedOrigins: []string{"*"}}}}}, s3.WithAPIOptions(stall))
			return err
		},
		"DeleteObjects": func(ctx context.Context) error {
			_, err := cl.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("logs"),
				Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String("secret.txt")}}}}, s3.WithAPIOptions(stall))
			return err
		},
		"PutBucketTagging": func(ctx context.Context) error {
			_, err := cl.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String("logs"),
				Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}}, s3.WithAPIOptions(stall))
			return err
		},
	}
	for name, call := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 3*stallTime)
		before := len(e.requests(g))
		start := time.Now()
		errc := make(chan error, 1)
		go func() { errc <- call(ctx) }()
		// The refusal is decided, and recorded, while the body is still
		// stalled: the gateway did not wait for it.
		var decided time.Duration
		for decided == 0 && time.Since(start) < stallTime {
			if recs := e.requests(g); len(recs) > before {
				decided = time.Since(start)
				if c := recs[len(recs)-1]; c.Allowed || !strings.Contains(c.Error, "is outside grant") {
					t.Errorf("%s: recorded %+v, want a scope denial", name, c)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		err := <-errc
		cancel()
		if decided == 0 || decided > stallTime/2 {
			t.Errorf("%s outside the grant, body stalled: not refused while the body stalled (decided after %v; 0: not within %v), want a refusal before the body is read", name, decided.Round(time.Millisecond), stallTime)
		}
		if !strings.HasPrefix(errCode(err), "AccessDenied: ") {
			t.Errorf("%s outside the grant: %v, want AccessDenied", name, err)
		}
	}

	// In scope, the policy is read, recorded and set as before.
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::logs/app/*"}]}`
	if _, err := cl.PutBucketPolicy(context.Background(), &s3.PutBucketPolicyInput{Bucket: aws.String("logs"), Policy: aws.String(policy)}); err != nil {
		t.Fatalf("PutBucketPolicy in scope: %v", errCode(err))
	}
	var recorded bool
	for _, c := range e.requests(g) {
		if c.Action == "s3:PutBucketPolicy" && c.Allowed && c.Params["policy"] != "" {
			recorded = true
		}
	}
	if !recorded {
		t.Errorf("the allowed PutBucketPolicy's policy was not recorded: %+v", e.requests(g))
	}
}
