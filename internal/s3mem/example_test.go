package s3mem_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/s3mem"
)

// An upstream for a test or the demo: seed it, serve it on loopback, and
// point any S3 client (path style) at it with the same keys.
func Example() {
	up := s3mem.New("AKIAUPSTREAM00000001", "upstream-secret")
	up.Put("logs", "app/today.log", []byte("all quiet\n"))
	hs := httptest.NewServer(up) // 127.0.0.1
	defer hs.Close()

	client := s3.New(s3.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIAUPSTREAM00000001", "upstream-secret", ""),
		BaseEndpoint: aws.String(hs.URL),
		UsePathStyle: true,
	})
	out, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/today.log")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer out.Body.Close()
	data, _ := io.ReadAll(out.Body)
	fmt.Printf("%s%d authenticated request(s)\n", data, up.Requests())
	// Output:
	// all quiet
	// 1 authenticated request(s)
}
