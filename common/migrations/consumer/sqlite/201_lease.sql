-- Which instance may apply entries (Postgres; SQLite allows one instance by a file lock).
-- `fence` grows with every change of holder; writes carry it and are refused once it moved.
CREATE TABLE consumer_lease (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT    NOT NULL,
    fence      INTEGER NOT NULL,
    expires_us INTEGER NOT NULL
);
INSERT INTO consumer_lease (id, holder, fence, expires_us) VALUES (1, '', 0, 0);
