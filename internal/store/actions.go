package store

import (
	"context"
	"time"
)

// ActionClaimer is implemented by the write transactions of both stores.
// ClaimAction records key, the identity of a signed request from outside
// (a Slack click, a webhook's decision; package notify), until expires,
// and reports whether it was new: false if key is already recorded and not
// yet expired, whichever process recorded it. Such a request stays valid
// for the few minutes its signature's timestamp allows, so a replica that
// remembered only what it had handled itself would handle again a request
// captured and replayed to another replica, or to itself after a restart.
// Records that expired before now are removed on the way.
type ActionClaimer interface {
	ClaimAction(ctx context.Context, key string, now, expires time.Time) (bool, error)
}
