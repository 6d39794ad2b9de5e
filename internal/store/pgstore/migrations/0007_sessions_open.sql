-- Airlock schema version 7: the open sessions are listed through a partial index.
--
-- The replicas sweep the sessions a dead replica left open. They found them
-- through the grants that ended recently, and so never ended the sessions
-- of a grant that ended longer ago (after an outage of every replica).
-- open copies whether the session's record states no end; only open
-- sessions enter the index. A record is JSON without spaces whose
-- "ended_at" key is left out while the session is open.
-- The index is built before the marks are set, for the reason migration
-- 11 gives.
ALTER TABLE sessions ADD COLUMN open boolean NOT NULL DEFAULT false;
CREATE INDEX sessions_open ON sessions (id) WHERE open;
UPDATE sessions SET open = true WHERE position('"ended_at":'::bytea IN record) = 0;
