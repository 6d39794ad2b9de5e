package awsgw

import (
	"slices"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// Bounds of the index of grants seen through Authority.Subscribe. It is only
// used to explain a refusal precisely ("grant g_… was revoked") to a caller
// who proved it holds the grant's secret; authorization itself always goes
// through Authority.Lookup.
const (
	// endedRetention is how long after its expiry an ended grant stays
	// explainable.
	endedRetention = 24 * time.Hour
	// maxKnownEnded caps the ended grants kept; the oldest expiries go first.
	maxKnownEnded = 50000
)

// known indexes grants by credential id, live and recently ended.
type known struct {
	mu     sync.Mutex
	byCred map[string]*gateway.Grant
	now    func() time.Time
	adds   int
}

func newKnown(now func() time.Time) *known {
	return &known{byCred: map[string]*gateway.Grant{}, now: now}
}

// add records g. It runs on the control plane's activation path, so it only
// touches the map; pruning is amortised over additions.
func (k *known) add(g *gateway.Grant) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.byCred[g.CredentialID] = g
	k.adds++
	if k.adds%1024 == 0 || len(k.byCred) > 2*maxKnownEnded {
		k.pruneLocked()
	}
}

// get returns the grant that holds credentialID, live or ended, or nil.
func (k *known) get(credentialID string) *gateway.Grant {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.byCred[credentialID]
}

// pruneLocked drops ended grants past their retention, then the ended grants
// with the oldest expiries beyond maxKnownEnded. Live grants are never
// dropped: the control plane bounds those.
func (k *known) pruneLocked() {
	now := k.now()
	var ended []*gateway.Grant
	for id, g := range k.byCred {
		if g.Live(now) {
			continue
		}
		if now.Sub(g.ExpiresAt) > endedRetention {
			delete(k.byCred, id)
			continue
		}
		ended = append(ended, g)
	}
	if len(ended) <= maxKnownEnded {
		return
	}
	// Rare: sort only when over the cap.
	sortByExpiry(ended)
	for _, g := range ended[:len(ended)-maxKnownEnded] {
		delete(k.byCred, g.CredentialID)
	}
}

func sortByExpiry(gs []*gateway.Grant) {
	slices.SortFunc(gs, func(a, b *gateway.Grant) int { return a.ExpiresAt.Compare(b.ExpiresAt) })
}
