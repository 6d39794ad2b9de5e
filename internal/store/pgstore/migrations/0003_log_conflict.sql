-- Airlock schema version 3: a statement that fails when log entries do not
-- continue the log.
--
-- The shared log's last statement (entries and their checkpoint) is sent in
-- one round trip with its transaction's COMMIT. Entries that do not continue
-- the log are not inserted; that must fail the statement, so that the server
-- skips the COMMIT and nothing of the transaction is committed without them.
CREATE FUNCTION airlock_log_conflict(first bigint, size bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'log entry 0 has seq %, want % (log size %)', first, size, size
		USING ERRCODE = 'AL409';
END
$$;
