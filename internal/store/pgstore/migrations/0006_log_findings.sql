-- Airlock schema version 6: the findings are listed through a partial index.
--
-- An auditor's findings (log entries of type 'finding') are a few among
-- millions of calls; listing them scanned the whole log. Only findings
-- enter this index; every other entry costs the check of its type.
CREATE INDEX log_entries_findings ON log_entries (seq) WHERE type = 'finding';
