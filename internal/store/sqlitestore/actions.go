package sqlitestore

import (
	"context"
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

var _ store.ActionClaimer = (*Tx)(nil)

// ClaimAction records key until expires unless it is recorded already
// (store.ActionClaimer): one process owns the file, but it must still
// refuse after a restart what it handled before.
func (t *Tx) ClaimAction(ctx context.Context, key string, now, expires time.Time) (bool, error) {
	if err := t.usable(); err != nil {
		return false, err
	}
	if _, err := t.exec(ctx, `DELETE FROM integration_actions WHERE expires < ?`, now.UnixNano()); err != nil {
		return false, fmt.Errorf("sqlitestore: expire handled integration actions: %w", err)
	}
	res, err := t.exec(ctx, `INSERT INTO integration_actions (key, expires) VALUES (?, ?) ON CONFLICT(key) DO NOTHING`, key, expires.UnixNano())
	if err != nil {
		return false, fmt.Errorf("sqlitestore: record a handled integration action: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlitestore: record a handled integration action: %w", err)
	}
	return n == 1, nil
}
