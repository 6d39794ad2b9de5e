package testenv

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestVersityAnswersUnsigned403(t *testing.T) {
	s := Versity(t)
	resp, err := http.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "AccessDenied") {
		t.Fatalf("an unsigned request got %d %s; versitygw should refuse it", resp.StatusCode, b)
	}
}
