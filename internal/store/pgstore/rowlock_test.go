package pgstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestGrantReadsLockTheRow: a write transaction's reads of a grant (Grant,
// GrantRecord) lock its row until the transaction ends (FOR UPDATE), so
// per-grant decisions stay serialized should writers ever run in parallel
// (the writers' advisory lock serializes them today; see Begin). Another
// session's UPDATE of the row must wait: here it gives up at its
// lock_timeout (55P03) while the transaction is open, and goes through once
// it has ended.
func TestGrantReadsLockTheRow(t *testing.T) {
	s, dsn := openFresh(t)
	defer s.Close()
	ctx := t.Context()
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.CreateGrant(ctx, model.Grant{ID: "g_1", Status: model.Pending, RequestedAt: time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	if _, err := other.Exec(ctx, "SET lock_timeout = 200"); err != nil {
		t.Fatal(err)
	}
	update := func() error {
		_, err := other.Exec(ctx, "UPDATE grants SET record = record WHERE id = 'g_1'")
		return err
	}
	for _, c := range []struct {
		name string
		read func(store.Tx) error
	}{
		{"Grant", func(tx store.Tx) error { _, err := tx.Grant(ctx, "g_1"); return err }},
		{"GrantRecord", func(tx store.Tx) error { _, err := tx.(store.GrantRecordTx).GrantRecord(ctx, "g_1"); return err }},
	} {
		t.Run(c.name, func(t *testing.T) {
			tx, err := s.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.read(tx); err != nil {
				tx.Rollback()
				t.Fatal(err)
			}
			err = update()
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "55P03" {
				t.Errorf("another session's UPDATE of the grant's row while the transaction that read it is open: %v, want it to wait (lock_timeout, 55P03)", err)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			if err := update(); err != nil {
				t.Errorf("the UPDATE after the transaction ended: %v", err)
			}
		})
	}
}
