-- The event's own snapshot of the details (the order's JSON as it was at that version), stored
-- when the entry is appended, so representations with inline details never show a later
-- version than the entry announces. NULL for entries appended before snapshots were stored:
-- those are published with their link only.
ALTER TABLE feed_entries ADD COLUMN details TEXT;
