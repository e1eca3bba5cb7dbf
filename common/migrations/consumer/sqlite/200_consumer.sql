-- Where a feed consumer stands: the last entry it handled, in feed order. One row.
CREATE TABLE consumer_checkpoint (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    entry_id         TEXT,
    entry_updated_us INTEGER NOT NULL DEFAULT 0,
    handled          INTEGER NOT NULL DEFAULT 0,
    updated_us       INTEGER NOT NULL DEFAULT 0
);
INSERT INTO consumer_checkpoint (id) VALUES (1);

-- Every entry handled, so that seeing one twice changes nothing. `seq` is the order of handling.
CREATE TABLE consumer_handled (
    entry_id   TEXT    PRIMARY KEY,
    seq        INTEGER NOT NULL,
    outcome    TEXT    NOT NULL,
    handled_us INTEGER NOT NULL
);

-- Entries that failed permanently (dead letters), kept with the reason until retried.
CREATE TABLE consumer_parked (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id         TEXT    NOT NULL UNIQUE,
    link             TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL,
    entry_updated_us INTEGER NOT NULL,
    parked_us        INTEGER NOT NULL
);
