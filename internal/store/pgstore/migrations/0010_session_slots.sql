-- Airlock schema version 10: the session slots of max_sessions_per_grant.
--
-- A postgres target's max_sessions_per_grant bounds the sessions (and
-- kept upstream connections) a grant holds at once. Each replica counted
-- its own, so an agent spreading its logins over N replicas held N times
-- the bound of the upstream's connections. A replica on a shared store now
-- takes a row here for each session it admits (kept: the session ended and
-- its upstream connection waits for the grant's next session) and gives it
-- back at the end. lease_until (unix nanoseconds, the database's clock as
-- the replica reads it) is pushed forward by the replica while it runs: a
-- row whose lease has passed belongs to a replica that died, and counts no
-- more. The table is UNLOGGED: a slot is a lease, not a record, so its
-- writes need no WAL and their commits wait for no disk flush; after a
-- crash of the database (or on a promoted standby) it is empty, and each
-- replica writes its sessions' slots again at its next renewal.
CREATE UNLOGGED TABLE session_slots (
	id          text COLLATE "C" PRIMARY KEY,
	grant_id    text COLLATE "C" NOT NULL,
	replica     text COLLATE "C" NOT NULL,
	kept        boolean NOT NULL DEFAULT false,
	lease_until bigint NOT NULL
);
CREATE INDEX session_slots_grant ON session_slots (grant_id);
CREATE INDEX session_slots_replica ON session_slots (replica);
