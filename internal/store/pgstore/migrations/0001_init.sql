-- Airlock schema version 1: the initial schema.
--
-- Times are unix nanoseconds in bigint columns (NULL for the zero time), as
-- in the SQLite store: callers compare times to the nanosecond, which
-- timestamptz (microseconds) would round.
--
-- Every text column that is compared or ordered is COLLATE "C", so that
-- ordering is by bytes (Go's string order) whatever the database's locale.

CREATE TABLE identities (
	name        text COLLATE "C" PRIMARY KEY,
	kind        text NOT NULL,
	owner       text NOT NULL DEFAULT '',
	groups_json text NOT NULL DEFAULT '[]',
	key_sha256  text COLLATE "C" NOT NULL DEFAULT '',
	source      text NOT NULL DEFAULT '',
	disabled    boolean NOT NULL DEFAULT false,
	created_at  bigint,
	created_by  text NOT NULL DEFAULT ''
);
CREATE INDEX identities_key_sha256 ON identities (key_sha256);

-- requested_at and span_end (= Deadline(), or 9223372036854775807 while a
-- grant has no deadline) are unix nanoseconds. long_lived marks grants whose
-- lifetime is longer than 30 days or open-ended (they are not counted in
-- max_span_nanos). record is the JSON of the whole model.Grant without its
-- Usage, which is derived from sessions.
CREATE TABLE grants (
	id            text COLLATE "C" PRIMARY KEY,
	identity      text COLLATE "C" NOT NULL,
	target        text COLLATE "C" NOT NULL,
	account       text COLLATE "C" NOT NULL,
	status        text COLLATE "C" NOT NULL,
	requested_at  bigint NOT NULL,
	span_end      bigint NOT NULL,
	long_lived    boolean NOT NULL,
	credential_id text COLLATE "C" UNIQUE,
	record        bytea NOT NULL
);
-- The review indexes: an equality column, then the requested_at range that
-- bounds the scan; span_end rides along so that grants that ended before the
-- window are skipped without reading their record.
CREATE INDEX grants_account_time  ON grants (account, requested_at, span_end);
CREATE INDEX grants_target_time   ON grants (target, requested_at, span_end);
CREATE INDEX grants_identity_time ON grants (identity, requested_at, span_end);
CREATE INDEX grants_time          ON grants (requested_at, span_end);
CREATE INDEX grants_status_time   ON grants (status, requested_at, span_end);
CREATE INDEX grants_long          ON grants (requested_at, span_end) WHERE long_lived;

-- The counters and used_json are copies of the record's fields, kept so that
-- Usage can be summed without decoding whole session records.
CREATE TABLE sessions (
	id         text COLLATE "C" PRIMARY KEY,
	grant_id   text COLLATE "C" NOT NULL,
	started_at bigint,
	calls      bigint NOT NULL DEFAULT 0,
	denied     bigint NOT NULL DEFAULT 0,
	bytes_in   bigint NOT NULL DEFAULT 0,
	bytes_out  bigint NOT NULL DEFAULT 0,
	used_json  text,
	record     bytea NOT NULL
);
CREATE INDEX sessions_grant ON sessions (grant_id, started_at);

-- The audit log, stored as given: detecting modification is the job of the
-- Merkle tree and the signed checkpoints.
CREATE TABLE log_entries (
	seq        bigint PRIMARY KEY,
	time       bigint,
	type       text COLLATE "C",
	grant_id   text COLLATE "C",
	session_id text COLLATE "C",
	data       bytea,
	leaf_hash  bytea
);
CREATE INDEX log_entries_grant   ON log_entries (grant_id, seq);
CREATE INDEX log_entries_session ON log_entries (session_id, seq);

CREATE TABLE log_checkpoints (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	size       bigint,
	root       bytea,
	note       bytea,
	frontier   bytea,
	created_at bigint
);

CREATE TABLE meta (
	key   text COLLATE "C" PRIMARY KEY,
	value text
);
INSERT INTO meta (key, value) VALUES ('max_span_nanos', '0');
