package cli

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/server"
)

// TestShowFailsOnUnprovenRecord: a session's stored summary changed in
// the database (its call count raised) is not what the log implies.
// session show printed the stored summary with no warning at all, and
// exited 0; grant show warned above the record but exited 0 too, in -o
// json without any warning. Both now say what differs (on stderr with -o
// json, leaving the output parseable) and exit 1 in every format, as
// airlock grants does for a row the log does not prove.
func TestShowFailsOnUnprovenRecord(t *testing.T) {
	l := startServer(t, nil)
	ctx := context.Background()
	bot := client.New("http://"+l.apiAddr, l.botKey)
	g, err := bot.Request(ctx, grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*"}, Duration: "10m", Reason: "unproven"})
	if err != nil || g.Status != model.Active {
		t.Fatalf("request: %v (%s)", err, g.Status)
	}
	cr, err := bot.Credentials(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	s3c := s3.New(s3.Options{
		Region: cr.Endpoint.Region, BaseEndpoint: aws.String(cr.Endpoint.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken),
		Retryer:     aws.NopRetryer{},
	})
	if _, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("logs"), Prefix: aws.String("app/")}); err != nil {
		t.Fatalf("list: %v", err)
	}
	if _, err := bot.End(ctx, g.ID, "done"); err != nil {
		t.Fatalf("end: %v", err)
	}
	for _, args := range [][]string{{"session", "show", g.ID}, {"grant", "show", g.ID}} {
		if code, out, errOut := l.as(l.aliceKey, args...); code != 0 {
			t.Fatalf("%v before any change: exit %d: %s%s", args, code, out, errOut)
		}
	}

	db, err := sql.Open("sqlite", filepath.Join(l.dataDir, server.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The session's row is written once more when it ends, after the
	// grant's end returns: change it only once that has happened, or the
	// end overwrites the change (seen as a flake: "1 calls" shown, exit 0).
	for i := 0; ; i++ {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM sessions WHERE grant_id = ? AND json_extract(CAST(record AS TEXT), '$.ended_at') IS NOT NULL`, g.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if i == 500 {
			t.Fatal("the session's row never recorded its end")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if res, err := db.Exec(`UPDATE sessions SET calls = calls + 5, record = CAST(json_set(CAST(record AS TEXT), '$.calls', calls + 5) AS BLOB) WHERE grant_id = ?`, g.ID); err != nil {
		t.Fatal(err)
	} else if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("changed %d sessions", n)
	}

	for _, args := range [][]string{
		{"session", "show", g.ID}, {"grant", "show", g.ID},
		{"session", "show", g.ID, "-o", "json"}, {"grant", "show", g.ID, "-o", "json"},
	} {
		code, out, errOut := l.as(l.aliceKey, args...)
		warnings := out
		if args[len(args)-1] == "json" {
			warnings = errOut
		}
		if code != 1 || !strings.Contains(warnings, "does NOT match the audit log") || !strings.Contains(warnings, "calls is 6, log says 1") ||
			!strings.Contains(errOut, "differs from the audit log") {
			t.Errorf("%v: exit %d:\n%s\nstderr: %s", args, code, out, errOut)
		}
	}
}
