package grants

import "testing"

// benchCommands are command lines as agents record them: plain argv, a
// shell line with assignments, quotes and substitutions, header lines,
// a case statement in a substitution, PowerShell.
var benchCommands = [][]string{
	{"aws", "s3", "ls", "s3://bucket/prefix/"},
	{"psql", "postgresql://admin:hunter2@db:5432/app", "-c", "select count(*) from orders where created_at > now() - interval '1 day'"},
	{"bash", "-c", `PGPASSWORD="$(aws secretsmanager get-secret-value --secret-id prod/db --query SecretString --output text)" psql -h db -U app -c 'select 1'; echo done`},
	{"sh", "-c", `curl -sS -H "Authorization: Bearer $(cat /run/token)" -H 'Accept: application/json' -d '{"name":"x","password":"hunter2"}' https://api.example.com/v1/items | jq .`},
	{"bash", "-lc", `export GITHUB_TOKEN=$(case "$ENV" in prod) vault read -field=t secret/gh;; *) echo dev;; esac); git config --global credential.password "$GITHUB_TOKEN" && gh auth status`},
	{"pwsh", "-c", "$env:PGPASSWORD = (Get-Content secret.txt); psql -h db; Write-Host done"},
}

// BenchmarkRedactCommand redacts benchCommands, one command line per
// op's each: count instructions under callgrind at two -test.benchtime
// values and divide by the lines between them.
func BenchmarkRedactCommand(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		for _, argv := range benchCommands {
			redactCommand(argv)
		}
	}
}
