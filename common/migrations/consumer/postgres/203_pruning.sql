-- consumer_handled keeps the newest rows only (KEEP_HANDLED, by handling order); every pruned
-- revision was handled, and this is the newest atom:updated among them: a revision at or
-- before it that has no row counts as handled.
ALTER TABLE consumer_checkpoint ADD COLUMN pruned_through_us BIGINT NOT NULL DEFAULT 0;
CREATE INDEX consumer_handled_seq ON consumer_handled (seq);
