package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// BenchOpenGrantsListing times the listing a sweep of the open grants
// reads (a policy reload's, an agent's disable, the replicas' re-read):
// Grants of every active grant, in s, a fresh store it fills with grants
// active grants of sessions sessions each, with their usage ("usage", what
// every sweep read before store.GrantFilter.RecordsOnly) and without
// ("records"). Each store's tests run it on their own store:
//
//	go test -run '^$' -bench OpenGrantsListing ./internal/store/sqlitestore ./internal/store/pgstore
func BenchOpenGrantsListing(b *testing.B, s store.Store, grants, sessions int) {
	ctx := context.Background()
	tx, err := s.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for i := range grants {
		at := t0.Add(time.Duration(i) * time.Second)
		g := fullGrant(fmt.Sprintf("g_%06d", i), at)
		g.Status, g.EndedAt, g.EndReason, g.EndedBy, g.EndComment, g.EndedAuth = model.Active, time.Time{}, "", "", "", nil
		g.ExpiresAt = at.Add(24 * time.Hour)
		if err := tx.CreateGrant(ctx, g); err != nil {
			b.Fatal(err)
		}
		for j := range sessions {
			ss := model.Session{ID: fmt.Sprintf("s_%06d_%04d", i, j), GrantID: g.ID, Identity: g.Identity, Target: g.Target,
				Client: "aws-cli/2.15", StartedAt: at.Add(time.Duration(j) * time.Millisecond), EndedAt: at.Add(time.Minute),
				Calls: int64(j % 200), Denied: int64(j % 3), BytesIn: 1 << 10, BytesOut: 1 << 16,
				Used: []string{"s3:GetObject arn:aws:s3:::logs/app/" + fmt.Sprint(j%50), "s3:ListBucket arn:aws:s3:::logs"}}
			if err := tx.PutSession(ctx, ss); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		records bool
	}{{"usage", false}, {"records", true}} {
		b.Run(c.name, func(b *testing.B) {
			f := store.GrantFilter{Status: []model.GrantStatus{model.Active}, RecordsOnly: c.records}
			b.ReportAllocs()
			for b.Loop() {
				gs, err := s.Grants(ctx, f)
				if err != nil {
					b.Fatal(err)
				}
				if len(gs) != grants {
					b.Fatalf("listed %d grants, want %d", len(gs), grants)
				}
				if used := gs[0].Usage.Sessions; used != map[bool]int64{false: int64(sessions)}[c.records] {
					b.Fatalf("the first grant's usage counts %d sessions (RecordsOnly %v)", used, c.records)
				}
			}
		})
	}
}
