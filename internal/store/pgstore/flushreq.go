package pgstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/airlock-dev/airlock/internal/store"
)

// Requests to write pending session summaries, and their acknowledgements
// (store.FlushRequester), go over the grant change channel like every
// notice; this file only adds the query that lists the live replicas and a
// notice sent outside a transaction.

var _ store.FlushRequester = (*Store)(nil)

// listenAppPrefix begins the application_name of every listener
// connection (see Listener.session).
const listenAppPrefix = "airlock-listen "

// LiveReplicas lists the replicas whose listener holds its replica lock in
// this store's schema: the names listeners recorded with their backend when
// they connected (replica_listeners) whose lock is granted to that same
// backend. (The listener's application_name also names the replica, for
// operators, but PostgreSQL cuts it to 63 bytes.)
func (s *Store) LiveReplicas(ctx context.Context) ([]string, error) {
	const q = `SELECT r.name FROM replica_listeners r
	JOIN pg_catalog.pg_locks l ON l.pid = r.pid
	WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
		AND l.classid::bigint = (hashtextextended($1 || r.name, 0) >> 32) & 4294967295
		AND l.objid::bigint = hashtextextended($1 || r.name, 0) & 4294967295
	ORDER BY 1`
	rows, err := s.pool.Query(ctx, q, s.replicaLockKey(""))
	if err != nil {
		return nil, fmt.Errorf("pgstore: listing live replicas: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("pgstore: listing live replicas: %w", err)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: listing live replicas: %w", err)
	}
	return out, nil
}

// NotifyNow sends a notice at once (autocommit), for requests that change
// nothing in the store.
func (s *Store) NotifyNow(ctx context.Context, id, origin string) error {
	if id == "" || strings.ContainsAny(id+origin, " \x00") {
		return fmt.Errorf("pgstore: notify: id %q or origin %q is empty or has a space", id, origin)
	}
	if _, err := s.pool.Exec(ctx, "SELECT pg_notify($1, $2)", s.grantChannel(), id+" "+origin); err != nil {
		return fmt.Errorf("pgstore: notify %s: %w", id, err)
	}
	return nil
}
