package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

var _ store.ActionClaimer = (*Tx)(nil)

const (
	expireActionsSQL = `DELETE FROM integration_actions WHERE expires < $1`
	claimActionSQL   = `INSERT INTO integration_actions (key, expires) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`
)

// ClaimAction records key until expires unless it is recorded already
// (store.ActionClaimer). It runs in the writers' transaction, which every
// replica's writer takes in turn, so two replicas claiming one key at once
// see one of them win.
func (t *Tx) ClaimAction(ctx context.Context, key string, now, expires time.Time) (bool, error) {
	if err := t.usable(); err != nil {
		return false, err
	}
	if _, err := t.tx.Exec(ctx, expireActionsSQL, now.UnixNano()); err != nil {
		return false, fmt.Errorf("pgstore: expire handled integration actions: %w", err)
	}
	tag, err := t.tx.Exec(ctx, claimActionSQL, key, expires.UnixNano())
	if err != nil {
		return false, fmt.Errorf("pgstore: record a handled integration action: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}
