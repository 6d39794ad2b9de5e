-- Airlock schema version 11: a grant's sessions are paged in the order
-- their starts were stored.
--
-- GET /v1/grants/{id}/sessions paged by (started_at, id). A session's
-- started_at is its replica's time, taken before its start is stored:
-- another replica's may lag it, and a start may be stored after a later
-- one, so a session stored after a reader took a page's cursor could sort
-- before that cursor and be skipped for good. start_seq is the sequence of
-- the session.started entry the row is written from (assigned under the
-- writers' lock, in the transaction that stores the row): every session
-- stored later has a higher one. A row written from no entry keeps 0.
--
-- The index is built before the rows are filled in: built after, over rows
-- whose update left HOT chains it breaks, PostgreSQL marks it usable only
-- by snapshots newer than itself, and any transaction open anywhere on the
-- server (another database's too) kept the planner from it for that long.
ALTER TABLE sessions ADD COLUMN start_seq bigint NOT NULL DEFAULT 0;
CREATE INDEX sessions_grant_seq ON sessions (grant_id, start_seq, id);
UPDATE sessions s SET start_seq = l.seq FROM log_entries l
	WHERE l.session_id = s.id AND l.type = 'session.started';
