-- Airlock schema version 8: the signed integration requests already handled.
--
-- A Slack click or a webhook's decision is signed with a timestamp that
-- keeps it valid for a few minutes; each replica remembered the ones it had
-- handled in its own memory, so a captured request replayed to another
-- replica (or after a restart) was handled again. Every replica now records
-- each one here (store.ActionClaimer) until its signature has expired.
-- key is a hash of the request's identity; expires is in Unix nanoseconds.
CREATE TABLE integration_actions (
	key     text COLLATE "C" PRIMARY KEY,
	expires bigint NOT NULL
);
CREATE INDEX integration_actions_expires ON integration_actions (expires);
