-- Full archive pages as rendered, coded in zstd. A full page never changes, so it is rendered
-- once, shortly after it fills, and afterwards read back whole instead of rebuilt from its
-- entries (which cost the first reader of a backlog most of the order service's CPU).
-- `layout` names what a page depends on besides its entries (the rendering's version, the
-- feed's identity, path and page size): pages of another layout are never served.
CREATE TABLE feed_archive_pages (
    representation   TEXT   NOT NULL,
    number           BIGINT NOT NULL,
    layout           TEXT   NOT NULL,
    -- The identity body's entity tag, without quotes (codings append their suffix).
    etag             TEXT   NOT NULL,
    -- The page's oldest entry's time (its `Last-Modified`).
    last_modified_us BIGINT,
    -- `Link` (RFC 8288), for representations whose body has no links.
    link_header      TEXT,
    -- The identity body's length, to decode it in one allocation.
    size             BIGINT NOT NULL,
    body             BLOB   NOT NULL,
    PRIMARY KEY (representation, number)
);
