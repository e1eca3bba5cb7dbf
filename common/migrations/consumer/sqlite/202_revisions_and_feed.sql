-- Which feed the checkpoint belongs to (its feed-level atom:id). NULL until the first entry is
-- handled; a consumer from before this column adopts the feed it reads at its next poll, once
-- its checkpoint is found there.
ALTER TABLE consumer_checkpoint ADD COLUMN feed_id TEXT;

-- What has been handled is a revision (RFC 4287 §4.1.1: id and atom:updated), not an id: each
-- row holds the newest revision handled. Entries handled before this column existed were
-- handled in feed order up to the checkpoint, so none was newer than the checkpoint's time.
ALTER TABLE consumer_handled ADD COLUMN entry_updated_us INTEGER NOT NULL DEFAULT 0;
UPDATE consumer_handled
   SET entry_updated_us = (SELECT entry_updated_us FROM consumer_checkpoint WHERE id = 1);
