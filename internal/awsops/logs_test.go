package awsops

import (
	"slices"
	"testing"
)

// TestStartQueryOwnSources: a Logs Insights query whose string selects
// its own log groups or data sources (an SQL or PPL query, a SOURCE
// command, logGroups(…)) reads groups the request's parameters do not
// name, so the checks on those parameters do not bind it: refused. Plain
// CWLI queries map as before.
func TestStartQueryOwnSources(t *testing.T) {
	const target = "Logs_20140328.StartQuery"
	for _, body := range []string{
		`{"logGroupName":"/app/api","queryLanguage":"SQL","queryString":"SELECT * FROM ` + "`logGroups(logGroupIdentifier: ['/secret/audit'])`" + `"}`,
		`{"logGroupName":"/app/api","queryLanguage":"PPL","queryString":"source = ` + "`logGroups(logGroupIdentifier: ['/secret/audit'])`" + ` | fields @message"}`,
		`{"logGroupName":"/app/api","queryString":"SOURCE logGroups(namePrefix: ['/secret']) | fields @message"}`,
		`{"logGroupName":"/app/api","queryString":"# all of them\nsource logGroups(namePrefix: ['/']) | fields @message"}`,
		`{"logGroupName":"/app/api","queryString":"fields @message | SOURCE dataSource(name: 'x')"}`,
		`{"logGroupName":"/app/api","queryLanguage":"cwli","queryString":"fields @message"}`,
	} {
		mustRefuse(t, jsonReq("logs", target, body), "AccessDeniedException")
	}
	for _, body := range []string{
		`{"logGroupName":"/app/api","queryString":"fields @message, source | filter source = 'web' | stats count() by source"}`,
		`{"logGroupName":"/app/api","queryLanguage":"CWLI","queryString":"fields @message"}`,
	} {
		op := mustMap(t, jsonReq("logs", target, body))
		if want := []Check{{"logs:StartQuery", lg + "/app/api"}}; !slices.Equal(op.Checks, want) {
			t.Errorf("%s: checks %v, want %v", body, op.Checks, want)
		}
	}
}
