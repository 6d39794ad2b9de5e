package httpapi_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/grants"
)

// TestWaitLimit: one identity's long polls are bounded; the one past the
// bound is answered 429 (resource_exhausted) at once, and the others still
// wake when the grant is decided.
func TestWaitLimit(t *testing.T) {
	e := newEnv(t)
	p := e.request(e.bot, humanScope, "30m")
	n := grants.DefaultMaxWaitersPerIdentity
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", e.url+"/v1/grants/"+p.ID+"?wait=60s", nil)
			req.Header.Set("Authorization", "Bearer "+e.bot)
			resp, err := e.http.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	for i := 0; ; i++ {
		if _, open := e.srv.Service.OpenWaits(); open == n {
			break
		} else if i == 5000 {
			t.Fatalf("%d long polls open, want %d", open, n)
		}
		time.Sleep(time.Millisecond)
	}
	r := e.do("GET", "/v1/grants/"+p.ID+"?wait=60s", e.bot, nil)
	wantError(t, r, http.StatusTooManyRequests, "resource_exhausted", "-")
	// Another identity is not held back by the bot's polls.
	if r := e.do("GET", "/v1/grants/"+p.ID+"?wait=1ms", e.alice, nil); r.status != http.StatusOK {
		t.Errorf("alice's wait: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/grants/"+p.ID+"/approve", e.alice, map[string]any{}); r.status != http.StatusOK {
		t.Fatalf("approve: %d %s", r.status, r.body)
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Errorf("a long poll ended with %d, want 200", s)
		}
	}
	if g, w := e.srv.Service.OpenWaits(); g != 0 || w != 0 {
		t.Errorf("after the approval: %d grants watched, %d long polls open", g, w)
	}
}
