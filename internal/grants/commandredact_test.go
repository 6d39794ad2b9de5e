package grants

import (
	"slices"
	"strings"
	"testing"
)

func TestRedactCommand(t *testing.T) {
	const own = "S3cr3tOfTheGrantItselfAAAAAAAAAAAAAAAAA"
	for _, c := range []struct{ in, want []string }{
		// Kept as the holder wrote them.
		{[]string{"aws", "s3", "ls", "s3://bucket/p/"}, nil},
		{[]string{"aws", "secretsmanager", "get-secret-value", "--secret-id", "prod/db"}, nil},
		{[]string{"aws", "logs", "filter-log-events", "--next-token=abc"}, []string{"aws", "logs", "filter-log-events", "--next-token=[REDACTED]"}},
		{[]string{"psql", "-c", "select 1", "host=h dbname=d"}, nil},
		{[]string{"sh", "-c", "cd $PWD && ls"}, nil},
		{[]string{"env", "TOKEN_NAME=ci", "SECRET_ARN=arn:aws:x"}, nil},
		// The grant's own secret, anywhere.
		{[]string{"psql", "password=" + own}, []string{"psql", "password=[REDACTED]"}},
		{[]string{"curl", "-H", "X-Key: " + own}, []string{"curl", "-H", "X-Key: [REDACTED]"}},
		// Other secrets.
		{[]string{"psql", "postgresql://admin:hunter2@db:5432/app"}, []string{"psql", "postgresql://admin:[REDACTED]@db:5432/app"}},
		{[]string{"psql", "host=db user=admin password='hun ter2' dbname=app"}, []string{"psql", "host=db user=admin password=[REDACTED] dbname=app"}},
		{[]string{"sh", "-c", "PGPASSWORD=hunter2 psql -h db"}, []string{"sh", "-c", "PGPASSWORD=[REDACTED] psql -h db"}},
		{[]string{"env", "MYSQL_PWD=hunter2", "GITHUB_TOKEN=ghp_x", "AWS_SECRET_ACCESS_KEY=abc"}, []string{"env", "MYSQL_PWD=[REDACTED]", "GITHUB_TOKEN=[REDACTED]", "AWS_SECRET_ACCESS_KEY=[REDACTED]"}},
		{[]string{"tool", "--password", "hunter2", "--db-password=hunter3", "-token", "t0k"}, []string{"tool", "--password", "[REDACTED]", "--db-password=[REDACTED]", "-token", "[REDACTED]"}},
		{[]string{"aws", "secretsmanager", "put-secret-value", "--secret-id", "x", "--secret-string", "hunter2"}, []string{"aws", "secretsmanager", "put-secret-value", "--secret-id", "x", "--secret-string", "[REDACTED]"}},
	} {
		want := c.want
		if want == nil {
			want = c.in
		}
		got := redactCommand(c.in, own, "AIRLOCKsessiontoken")
		if !slices.Equal(got, want) {
			t.Errorf("redactCommand(%q)\n got %q\nwant %q", c.in, got, want)
		}
		for _, g := range got {
			if strings.Contains(g, "hunter") || strings.Contains(g, own) {
				t.Errorf("a secret is left in %q", got)
			}
		}
	}
}
