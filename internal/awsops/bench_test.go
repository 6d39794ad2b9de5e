package awsops

import (
	"bufio"
	"net/http"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/s3iam"
)

// BenchmarkMap measures the mapper per call, next to s3iam's S3
// GetObject mapping in the same run (compare ratios, not absolute times,
// on a shared machine).
func BenchmarkMap(b *testing.B) {
	get := `{"TableName":"orders","Key":{"id":{"S":"order-0001"}},"ConsistentRead":true}`
	batch := `{"RequestItems":{"orders":[` + strings.Repeat(`{"PutRequest":{"Item":{"id":{"S":"x"},"v":{"S":"`+strings.Repeat("v", 1000)+`"}}}},`, 24) +
		`{"PutRequest":{"Item":{"id":{"S":"y"}}}}]}}`
	cases := []struct {
		name string
		r    *Request
	}{
		{"DynamoDBGetItem", jsonReq("dynamodb", "DynamoDB_20120810.GetItem", get)},
		{"DynamoDBBatchWrite25x1KiB", jsonReq("dynamodb", "DynamoDB_20120810.BatchWriteItem", batch)},
		{"LogsFilterLogEvents", jsonReq("logs", "Logs_20140328.FilterLogEvents", `{"logGroupName":"/app/web","filterPattern":"ERROR","startTime":1700000000000}`)},
		{"SQSQuerySendMessage", queryReq("sqs", "Action=SendMessage&Version=2012-11-05&QueueUrl=https%3A%2F%2Fsqs.us-east-1.amazonaws.com%2F111122223333%2Fjobs&MessageBody=hi")},
		{"CloudWatchCBORListMetrics", cborReq("ListMetrics", []byte("\xa1\x69Namespace\x6aAWS/Lambda"))},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.r.Body)))
			for b.Loop() {
				if _, err := Map(c.r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("S3GetObject(s3iam)", func(b *testing.B) {
		m := &s3iam.Mapper{Hosts: []string{"s3.test"}}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET /logs/app/2026/01/01/a.log?x-id=GetObject HTTP/1.1\r\nHost: s3.test\r\n\r\n")))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.Map(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
