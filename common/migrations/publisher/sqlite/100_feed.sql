-- The published feed: one row per event, position = commit order, gap-free.
CREATE TABLE feed_entries (
    position   INTEGER PRIMARY KEY,
    entry_id   TEXT    NOT NULL UNIQUE,
    title      TEXT    NOT NULL,
    summary    TEXT    NOT NULL,
    category   TEXT    NOT NULL,
    link       TEXT    NOT NULL,
    updated_us INTEGER NOT NULL
);

CREATE TABLE feed_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
