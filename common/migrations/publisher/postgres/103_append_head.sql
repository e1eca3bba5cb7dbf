-- Postgres only: the append counter. An append draws its positions by updating this one row,
-- whose lock it then holds until commit; an UPDATE waiting on that lock proceeds with the row
-- as the previous appender committed it, so the next positions are drawn in one statement
-- together with the insert of the entries. (Reading the last entry instead needs a lock taken in
-- a statement of its own first: a statement's snapshot predates the locks it waits for.)
-- SQLite serializes writers anyway and has no such table.
CREATE TABLE feed_head (
    one             BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    position        BIGINT  NOT NULL,
    updated_us      BIGINT  NOT NULL,
    -- `updated_us` before the last append: what the first entry of that append follows.
    prev_updated_us BIGINT  NOT NULL
);
INSERT INTO feed_head (position, updated_us, prev_updated_us)
SELECT COALESCE(MAX(position), 0), COALESCE(MAX(updated_us), 0), COALESCE(MAX(updated_us), 0)
FROM feed_entries;
