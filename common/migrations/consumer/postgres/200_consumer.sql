-- Where a feed consumer stands: the last entry it handled, in feed order. One row.
CREATE TABLE consumer_checkpoint (
    id               BIGINT PRIMARY KEY CHECK (id = 1),
    entry_id         TEXT,
    entry_updated_us BIGINT  NOT NULL DEFAULT 0,
    handled          BIGINT  NOT NULL DEFAULT 0,
    updated_us       BIGINT  NOT NULL DEFAULT 0
);
INSERT INTO consumer_checkpoint (id) VALUES (1);

-- Every entry handled, so that seeing one twice changes nothing. `seq` is the order of handling.
CREATE TABLE consumer_handled (
    entry_id   TEXT    PRIMARY KEY,
    seq        BIGINT  NOT NULL,
    outcome    TEXT    NOT NULL,
    handled_us BIGINT  NOT NULL
);

-- Entries that failed permanently (dead letters), kept with the reason until retried.
CREATE TABLE consumer_parked (
    id               BIGSERIAL PRIMARY KEY,
    entry_id         TEXT    NOT NULL UNIQUE,
    link             TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL,
    entry_updated_us BIGINT  NOT NULL,
    parked_us        BIGINT  NOT NULL
);
