-- Airlock schema version 5: the replicas' listeners by name.
--
-- A running replica holds an advisory lock keyed by its name on its
-- listener's connection. Listing the live replicas needs their names back:
-- they were read from the connection's application_name, which PostgreSQL
-- cuts to 63 bytes, so a replica with a longer name (a long host name) was
-- never listed. Each listener now records its name and backend here when
-- it connects; a row counts only while that backend holds the name's lock.
CREATE TABLE replica_listeners (
	name text COLLATE "C" PRIMARY KEY,
	pid  integer NOT NULL
);
