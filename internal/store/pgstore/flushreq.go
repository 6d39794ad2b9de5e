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
// this store's schema: the names in the listeners' application_name
// (pg_stat_activity shows it to every role) whose lock is granted to that
// same backend. A name cut by PostgreSQL's 63-byte limit on
// application_name does not match its lock and is not listed.
func (s *Store) LiveReplicas(ctx context.Context) ([]string, error) {
	const q = `SELECT DISTINCT n.name FROM (
		SELECT a.pid, substr(a.application_name, $2::int) AS name FROM pg_catalog.pg_stat_activity a
		WHERE starts_with(a.application_name, $3)) n
	JOIN pg_catalog.pg_locks l ON l.pid = n.pid
	WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
		AND l.classid::bigint = (hashtextextended($1 || n.name, 0) >> 32) & 4294967295
		AND l.objid::bigint = hashtextextended($1 || n.name, 0) & 4294967295
	ORDER BY 1`
	rows, err := s.pool.Query(ctx, q, s.replicaLockKey(""), len(listenAppPrefix)+1, listenAppPrefix)
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
