package awsgw

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logstypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

// TestServiceLogsQueryOwnSources: a StartQuery granted on one log group
// must not carry a query string that selects other groups (an SQL query
// over logGroups(…), a SOURCE command, also as a join's right side or in
// a subquery): the grant would be checked on the parameter's group while
// the query reads the ones it names.
func TestServiceLogsQueryOwnSources(t *testing.T) {
	e := newSvcEnv(t)
	g := e.grant("logs:StartQuery arn:aws:logs:" + testRegion + ":" + testAccount + ":log-group:/app/api")
	logs := cloudwatchlogs.NewFromConfig(e.cfg(g))
	ctx := context.Background()
	for _, in := range []*cloudwatchlogs.StartQueryInput{
		{LogGroupName: aws.String("/app/api"), QueryLanguage: logstypes.QueryLanguageSql,
			QueryString: aws.String("SELECT * FROM `logGroups(logGroupIdentifier: ['/secret/audit'])`")},
		{LogGroupName: aws.String("/app/api"), QueryString: aws.String("SOURCE logGroups(namePrefix: ['/secret']) | fields @message")},
		{LogGroupName: aws.String("/app/api"), QueryString: aws.String("fields requestId | join left=a right=s where a.requestId=s.requestId (SOURCE '/secret/audit') | fields s.user")},
		{LogGroupName: aws.String("/app/api"), QueryString: aws.String("filter requestId in ( SOURCE '/secret/audit' | fields requestId ) | fields @message")},
		// A "#" comment ended by a bare CR, and a vertical tab before
		// SOURCE: whitespace and line breaks beyond RE2's \s and ^.
		{LogGroupName: aws.String("/app/api"), QueryString: aws.String("# audit\rSOURCE '/secret/audit' | fields @message")},
		{LogGroupName: aws.String("/app/api"), QueryString: aws.String("\vSOURCE '/secret/audit' | fields @message")},
	} {
		in.StartTime, in.EndTime = aws.Int64(1), aws.Int64(2)
		if _, err := logs.StartQuery(ctx, in); apiCode(err) != "AccessDeniedException" || !strings.Contains(apiMessage(err), "StartQuery") {
			t.Fatalf("StartQuery %q: %v", *in.QueryString, err)
		}
	}
	e.upstreamSaw(t, "logs", 0)
	if _, err := logs.StartQuery(ctx, &cloudwatchlogs.StartQueryInput{LogGroupName: aws.String("/app/api"), QueryString: aws.String("fields @message"),
		StartTime: aws.Int64(1), EndTime: aws.Int64(2)}); err != nil {
		t.Fatalf("StartQuery on the granted group: %v", err)
	}
	e.upstreamSaw(t, "logs", 1)
}
