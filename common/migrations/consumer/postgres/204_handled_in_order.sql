-- The newest `atom:updated` handled so far: a revision newer than every one handled cannot
-- have been handled, so it is not looked up (see `store::is_handled`). (SQLite also re-keys
-- consumer_handled by `seq` in this step; a Postgres heap has no such clustering to gain.)
ALTER TABLE consumer_checkpoint ADD COLUMN handled_through_us BIGINT NOT NULL DEFAULT 0;
UPDATE consumer_checkpoint
   SET handled_through_us = GREATEST(pruned_through_us, entry_updated_us,
       COALESCE((SELECT MAX(entry_updated_us) FROM consumer_handled), 0));
