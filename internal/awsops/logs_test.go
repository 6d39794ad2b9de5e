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
		// The right side of a join and a subquery read the group their
		// own SOURCE names (Logs Insights query syntax: join, subqueries).
		`{"logGroupName":"/app/api","queryString":"filter status >= 500 | join type=inner left=api right=a where api.requestId=a.requestId (SOURCE '/secret/audit') | fields a.user"}`,
		`{"logGroupName":"/app/api","queryString":"filter requestId in ( SOURCE '/secret/audit' | fields requestId ) | fields @message"}`,
		`{"logGroupName":"/app/api","queryString":"fields @message | join left=l right=r where l.id=r.id (\n  source '/secret/audit')"}`,
		// Line breaks and spaces beyond ASCII's: a comment ended by a
		// bare CR, a vertical tab, a no-break space, a line separator.
		`{"logGroupName":"/app/api","queryString":"# all\rSOURCE logGroups(namePrefix: ['/']) | fields @message"}`,
		`{"logGroupName":"/app/api","queryString":"\u000bSOURCE '/secret/audit' | fields @message"}`,
		`{"logGroupName":"/app/api","queryString":"fields @message |\u00a0SOURCE '/secret/audit'"}`,
		`{"logGroupName":"/app/api","queryString":"# all\u2028SOURCE '/secret/audit' | fields @message"}`,
		`{"logGroupName":"/app/api","queryString":"fields @message | join left=l right=r where l.id=r.id (\u3000source '/secret/audit')"}`,
		`{"logGroupName":"/app/api","queryString":"SOURCE logGroups\u000b(namePrefix: ['/secret']) | fields @message"}`,
		// lookup reads a lookup table, which the request does not name.
		`{"logGroupName":"/app/api","queryString":"fields userId | lookup users userId OUTPUT email, phone"}`,
	} {
		mustRefuse(t, jsonReq("logs", target, body), "AccessDeniedException")
	}
	for _, body := range []string{
		`{"logGroupName":"/app/api","queryString":"fields @message, source | filter source = 'web' | stats count() by source"}`,
		`{"logGroupName":"/app/api","queryString":"fields strlen(@message), eventSource | filter source in ('web', 'api') | stats count() by source"}`,
		`{"logGroupName":"/app/api","queryLanguage":"CWLI","queryString":"fields @message"}`,
	} {
		op := mustMap(t, jsonReq("logs", target, body))
		if want := []Check{{"logs:StartQuery", lg + "/app/api"}}; !slices.Equal(op.Checks, want) {
			t.Errorf("%s: checks %v, want %v", body, op.Checks, want)
		}
	}
}

// TestLogsUnmask: GetLogEvents and FilterLogEvents with "unmask": true,
// and a Logs Insights query calling unmask(…), return what the log
// group's data protection policy masks, in the clear; AWS authorizes
// that with logs:Unmask on the group (CloudWatch Logs API reference,
// GetLogEvents and FilterLogEvents; Logs Insights query syntax, unmask).
// A grant to read the events must not show the masked data.
func TestLogsUnmask(t *testing.T) {
	unmask := Check{"logs:Unmask", lg + "/app/api"}
	for _, tc := range []struct {
		target, body string
		want         []Check
	}{
		{"GetLogEvents", `{"logGroupName":"/app/api","logStreamName":"s1","unmask":true}`,
			[]Check{{"logs:GetLogEvents", lg + "/app/api:log-stream:s1"}, unmask}},
		{"GetLogEvents", `{"logGroupIdentifier":"arn:aws:logs:us-east-1:111122223333:log-group:/app/api:*","logStreamName":"s1","unmask":true}`,
			[]Check{{"logs:GetLogEvents", lg + "/app/api:log-stream:s1"}, unmask}},
		{"GetLogEvents", `{"logGroupName":"/app/api","logStreamName":"s1","unmask":false}`,
			[]Check{{"logs:GetLogEvents", lg + "/app/api:log-stream:s1"}}},
		{"FilterLogEvents", `{"logGroupName":"/app/api","unmask":true}`,
			[]Check{{"logs:FilterLogEvents", lg + "/app/api"}, unmask}},
		{"FilterLogEvents", `{"logGroupName":"/app/api"}`,
			[]Check{{"logs:FilterLogEvents", lg + "/app/api"}}},
		{"StartQuery", `{"logGroupNames":["/app/api","/app/web"],"queryString":"fields @timestamp | UnMask (@message)"}`,
			[]Check{{"logs:StartQuery", lg + "/app/api"}, {"logs:StartQuery", lg + "/app/web"}, unmask, {"logs:Unmask", lg + "/app/web"}}},
		{"StartQuery", `{"logGroupName":"/app/api","queryString":"fields unmask(@message)"}`,
			[]Check{{"logs:StartQuery", lg + "/app/api"}, unmask}},
		{"StartQuery", `{"logGroupName":"/app/api","queryString":"fields unmask\u000b(@message)"}`,
			[]Check{{"logs:StartQuery", lg + "/app/api"}, unmask}},
		{"StartQuery", `{"logGroupName":"/app/api","queryString":"fields unmask\u00a0(@message)"}`,
			[]Check{{"logs:StartQuery", lg + "/app/api"}, unmask}},
		{"StartQuery", `{"logGroupName":"/app/api","queryString":"fields @message | filter @message like /unmasked/"}`,
			[]Check{{"logs:StartQuery", lg + "/app/api"}}},
	} {
		op := mustMap(t, jsonReq("logs", "Logs_20140328."+tc.target, tc.body))
		if !slices.Equal(op.Checks, tc.want) {
			t.Errorf("%s %s: checks %v, want %v", tc.target, tc.body, op.Checks, tc.want)
		}
		if op.Checks[0].Action != "logs:"+tc.target {
			t.Errorf("%s: first check %v, want the operation's own action", tc.target, op.Checks[0])
		}
	}
	// A case variant of the member, which the mapper would not read, is
	// refused rather than forwarded unchecked.
	mustRefuse(t, jsonReq("logs", "Logs_20140328.GetLogEvents", `{"logGroupName":"/app/api","logStreamName":"s1","Unmask":true}`), "SerializationException")
	mustRefuse(t, jsonReq("logs", "Logs_20140328.FilterLogEvents", `{"logGroupName":"/app/api","unmask":"true"}`), "SerializationException")
}
