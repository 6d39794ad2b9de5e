package grants

import (
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/findings"
	"github.com/airlock-dev/airlock/internal/store"
)

// Findings across replicas. Each replica's findings.Detector holds the
// instances it saw; behind a load balancer an agent identity's calls from
// two instances may reach two replicas, and neither would see both. So a
// replica that sees an identity active from an instance tells the others
// (store.SightingNotice), at the first call and again every quarter
// window while the instance stays active, and each notes it in its own
// detector (Detector.Note): the next call from another instance through
// any replica finds it, as through one. The notice is sent before the
// call is answered, so a client's next call (through whichever replica)
// comes after it is on its way; it arrives within milliseconds. When a
// replica records a shared-identity finding it says so too
// (store.ReportedNotice), so that the same identity+instance pair is not
// recorded again by another replica within the window. Credential-moved
// findings compare with the grant's stored requester, which every replica
// reads; their once-per-grant-and-address rule is checked in the write
// transaction (recordFinding).

// maxSightings bounds the sightings remembered as told; maxNoticeLen keeps
// a notice far below PostgreSQL's 8000-byte payload limit (instance claims
// are the client's token's; an instance with a longer key is not shared).
const (
	maxSightings = 10000
	maxNoticeLen = 2000
)

// sightings are the identity+instance pairs this replica told the others
// of, and when.
type sightings struct {
	mu   sync.Mutex
	sent map[string]time.Time
}

var b64 = base64.RawURLEncoding

// tellSighting tells the other replicas that identity is active from the
// instance whose key is key, unless it did within a quarter window.
func (s *Service) tellSighting(ctx context.Context, identity, key string) {
	fr, ok := s.st.(store.FlushRequester)
	if !ok || s.rep.notifier == nil || s.findings == nil {
		return
	}
	k := identity + "\x00" + key
	now := s.now()
	s.sight.mu.Lock()
	if t, ok := s.sight.sent[k]; ok && now.Sub(t) < s.findings.Window()/4 {
		s.sight.mu.Unlock()
		return
	}
	if s.sight.sent == nil || len(s.sight.sent) >= maxSightings {
		// Forgetting only means telling again.
		s.sight.sent = map[string]time.Time{}
	}
	s.sight.sent[k] = now
	s.sight.mu.Unlock()
	s.tell(ctx, fr, store.SightingNotice+b64.EncodeToString([]byte(identity))+"."+b64.EncodeToString([]byte(key)))
}

// tellReported tells the other replicas that this one recorded the
// shared-identity finding of identity from key.
func (s *Service) tellReported(ctx context.Context, identity, key string) {
	if fr, ok := s.st.(store.FlushRequester); ok && s.rep.notifier != nil {
		s.tell(ctx, fr, store.ReportedNotice+b64.EncodeToString([]byte(findings.SharedKey(identity, key))))
	}
}

func (s *Service) tell(ctx context.Context, fr store.FlushRequester, notice string) {
	if len(notice) > maxNoticeLen {
		return
	}
	if err := fr.NotifyNow(ctx, notice, s.rep.id); err != nil {
		// The others miss one sighting: a finding may then wait for the
		// next one (a quarter window at most while the agent is active).
		s.logger.Warn("telling the other replicas of an agent's instance failed", "err", err)
	}
}

// findingNotice applies another replica's sighting or report; it reports
// whether id was one.
func (s *Service) findingNotice(id string) bool {
	if rest, ok := strings.CutPrefix(id, store.SightingNotice); ok {
		a, b, _ := strings.Cut(rest, ".")
		identity, err1 := b64.DecodeString(a)
		key, err2 := b64.DecodeString(b)
		if err1 == nil && err2 == nil && s.findings != nil && len(identity) > 0 {
			s.findings.Note(string(identity), string(key))
		}
		return true
	}
	if rest, ok := strings.CutPrefix(id, store.ReportedNotice); ok {
		if k, err := b64.DecodeString(rest); err == nil && s.findings != nil {
			s.findings.MarkReported(string(k))
		}
		return true
	}
	return false
}
