package grants_test

import (
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
)

// BenchmarkAuthenticate is the gateway's hot path: authenticate a grant
// credential against the cache and check the call against the grant.
func BenchmarkAuthenticate(b *testing.B) {
	h := newHarness(b, harnessOptions{})
	g := h.request(bot, autoReq("15m"), model.Active)
	c := h.creds(bot, g.ID)
	// Other active grants in the cache, as on a busy gateway.
	for range 200 {
		h.request(bot2, autoReq("15m"), model.Active)
	}
	const action, resource = "s3:GetObject", "arn:aws:s3:::logs/app/2026/11/25/api.log"

	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			gg, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey)
			if err != nil || !gg.Allows(time.Now(), action, resource) {
				b.Fatal("refused", err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				gg, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey)
				if err != nil || !gg.Allows(time.Now(), action, resource) {
					b.Error("refused", err)
					return
				}
			}
		})
	})
}
