-- Airlock schema version 4: a MAC on each checkpoint, for the replicas.
--
-- A replica continuing the shared log from a checkpoint another replica
-- wrote must know that its size, root and frontier are authentic. head_mac
-- is HMAC-SHA256 over them under a key every replica derives from the
-- shared credential key (package auditlog, "Several replicas"): checking it
-- costs a hash where checking the Ed25519 signature costs a signature's
-- worth of curve arithmetic, inside the writers' lock. NULL on checkpoints
-- written before this version; those are checked by their signature.
ALTER TABLE log_checkpoints ADD COLUMN head_mac bytea;
