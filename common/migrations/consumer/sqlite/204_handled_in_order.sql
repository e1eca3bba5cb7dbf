-- consumer_handled keyed by its handling order: `seq` becomes the rowid, so each batch appends
-- its rows at the end of the table and pruning removes them from the front; `entry_id` keeps
-- its uniqueness by an index. Before, the table was keyed by `entry_id` (random `urn:uuid`s)
-- with a second index on `seq`: three B-trees per row, two of them written at random places.
-- The newest `atom:updated` handled so far: a revision newer than every one handled cannot
-- have been handled, so it is not looked up (see `store::is_handled`).
CREATE TABLE consumer_handled_in_order (
    seq              INTEGER PRIMARY KEY,
    entry_id         TEXT    NOT NULL UNIQUE,
    outcome          TEXT    NOT NULL,
    handled_us       INTEGER NOT NULL,
    entry_updated_us INTEGER NOT NULL DEFAULT 0
);
INSERT INTO consumer_handled_in_order (seq, entry_id, outcome, handled_us, entry_updated_us)
    SELECT seq, entry_id, outcome, handled_us, entry_updated_us FROM consumer_handled;
DROP TABLE consumer_handled;
ALTER TABLE consumer_handled_in_order RENAME TO consumer_handled;

ALTER TABLE consumer_checkpoint ADD COLUMN handled_through_us INTEGER NOT NULL DEFAULT 0;
UPDATE consumer_checkpoint
   SET handled_through_us = MAX(pruned_through_us, entry_updated_us,
       COALESCE((SELECT MAX(entry_updated_us) FROM consumer_handled), 0));
