-- Who reads the feed (readers name themselves in request headers): the last checkpoint each
-- reported, when and from where. Written in batches every few seconds, never per request;
-- rows of readers silent for long are deleted.
CREATE TABLE feed_readers (
    name         TEXT   PRIMARY KEY,
    checkpoint   TEXT,
    position     BIGINT,
    last_seen_us BIGINT NOT NULL,
    origin       TEXT   NOT NULL
);
