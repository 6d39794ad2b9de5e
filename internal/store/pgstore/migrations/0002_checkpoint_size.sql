-- Airlock schema version 2: find a checkpoint by the size of its tree.
--
-- With several replicas writing one log, the tree a tlog-witness last
-- cosigned was often signed by another replica; its frontier, looked up by
-- size, spares rebuilding that tree from the entries for a consistency proof.
CREATE INDEX log_checkpoints_size ON log_checkpoints (size, id);
