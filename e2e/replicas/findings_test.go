package replicas

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// fromIP is an HTTP client whose connections come from loopback address ip
// (another instance of an agent, as far as Airlock can tell).
func fromIP(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 30 * time.Second}
}

type finding struct {
	Kind     string   `json:"kind"`
	Identity string   `json:"identity"`
	Grant    string   `json:"grant"`
	Instance string   `json:"instance"`
	Others   []string `json:"others"`
}

// TestFindingsAcrossReplicas: an agent identity used from two instances
// through two replicas is flagged as through one (shared-identity, at the
// second instance's first call, and each identity+instance pair once), and
// a grant's credentials used from another address through two replicas
// make one credential-moved finding, not one per replica.
func TestFindingsAcrossReplicas(t *testing.T) {
	c := newCluster(t, testenv.PostgresDSN(t), 3)
	r0, r1, r2 := c.replicas[0], c.replicas[1], c.replicas[2]
	c.seedS3(t, map[string][]byte{"burst/seed.txt": []byte("seed")})
	apiCall := func(r *replica, ip string) {
		t.Helper()
		req, _ := http.NewRequest("GET", r.URL()+"/v1/grants", nil)
		req.Header.Set("Authorization", "Bearer "+c.bot.Key)
		resp, err := fromIP(ip).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET /v1/grants on %s from %s: %d", r.name, ip, resp.StatusCode)
		}
	}
	list := func(kind string) []finding {
		t.Helper()
		var fs []finding
		if err := json.Unmarshal([]byte(mustOK(t, c.cli(t, r2, c.alice, "findings", "-o", "json"), "findings")), &fs); err != nil {
			t.Fatal(err)
		}
		var out []finding
		for _, f := range fs {
			if f.Kind == kind {
				out = append(out, f)
			}
		}
		return out
	}
	describe := func(fs []finding) string {
		var b strings.Builder
		for _, f := range fs {
			fmt.Fprintf(&b, "\n  %s %s from %s, others %v", f.Kind, f.Identity, f.Instance, f.Others)
		}
		return b.String()
	}

	// The first instance through r0, the second through r1: flagged at
	// the second's first call.
	apiCall(r0, "127.0.0.1")
	apiCall(r1, "127.0.0.2")
	fs := list("shared-identity")
	if len(fs) != 1 || !strings.HasPrefix(fs[0].Instance, "127.0.0.2") || len(fs[0].Others) != 1 || fs[0].Others[0] != "127.0.0.1" {
		t.Fatalf("after calls from 127.0.0.1 via r0 and 127.0.0.2 via r1, shared-identity findings:%s\nwant one, for 127.0.0.2 with 127.0.0.1", describe(fs))
	}
	// The first instance again, through r1 now: its pair is new (as on one
	// replica); the second's through r0 was recorded already, by r1.
	apiCall(r1, "127.0.0.1")
	apiCall(r0, "127.0.0.2")
	apiCall(r2, "127.0.0.2")
	if fs := list("shared-identity"); len(fs) != 2 {
		t.Fatalf("shared-identity findings:%s\nwant two: one per instance", describe(fs))
	}

	// credential-moved: requested from 127.0.0.1, used from 127.0.0.2
	// through r1 and through r2.
	id := grantID(t, mustOK(t, c.cli(t, r0, c.bot, "request", "aws-prod", "--allow", "s3:GetObject arn:aws:s3:::logs/burst/*",
		"--for", "10m", "--reason", "moved credentials"), "request"))
	for _, r := range []*replica{r1, r2, r1} {
		m := c.creds(t, r, id)
		cl := s3.New(s3.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(m["AWS_ENDPOINT_URL"]), UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(m["AWS_ACCESS_KEY_ID"], m["AWS_SECRET_ACCESS_KEY"], m["AWS_SESSION_TOKEN"]),
			Retryer:     aws.NopRetryer{}, HTTPClient: fromIP("127.0.0.2"),
		})
		out, err := cl.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("burst/seed.txt")})
		if err != nil {
			t.Fatalf("GET through %s from 127.0.0.2: %v", r.name, err)
		}
		out.Body.Close()
	}
	var moved []finding
	for _, f := range list("credential-moved") {
		if f.Grant == id {
			moved = append(moved, f)
		}
	}
	if len(moved) != 1 {
		t.Fatalf("credential-moved findings of %s:%s\nwant one", id, describe(moved))
	}
}
