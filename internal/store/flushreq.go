package store

import "context"

// Fresh reads across replicas. A replica writes the stored summaries of the
// sessions its gateways serve lazily (package grants), so a read on
// another replica would miss their latest calls. Before a review read or
// `audit verify`, a replica asks every live replica to write theirs, and
// waits (bounded) for each one's acknowledgement, both sent as notices on
// the replicas' shared change channel.

// FlushRequester is implemented by a shared store.
type FlushRequester interface {
	// LiveReplicas lists the ids of the replicas running now (those
	// ReplicaAlive reports alive).
	LiveReplicas(ctx context.Context) ([]string, error)
	// NotifyNow sends a notice (id, origin) on the change channel at once,
	// outside any transaction. Neither may contain a space.
	NotifyNow(ctx context.Context, id, origin string) error
}

// FlushNotice prefixes a request to write pending session summaries
// (followed by the request's id), and FlushedNotice the acknowledgement
// of one. Neither ever begins a grant id (grant ids have no colon).
const (
	FlushNotice   = "flush:"
	FlushedNotice = "flushed:"
)

// Findings across replicas (package grants, findingsync.go): a replica
// that sees an agent identity active from an instance tells the others
// (SightingNotice + the identity and the instance's key, each base64url,
// joined by "."), and one that records a shared-identity finding tells
// them it did (ReportedNotice + the finding's dedupe key, base64url), so
// that the identity's instances are compared across every replica and
// each finding is recorded once.
const (
	SightingNotice = "seen:"
	ReportedNotice = "reported:"
)
