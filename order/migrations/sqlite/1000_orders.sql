CREATE TABLE customers (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL,
    firstname TEXT NOT NULL,
    email     TEXT NOT NULL,
    street    TEXT NOT NULL,
    zip       TEXT NOT NULL,
    city      TEXT NOT NULL
);

CREATE TABLE items (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    price_cents INTEGER NOT NULL
);

-- An order keeps copies of customer, address and price data as they were when it was placed.
CREATE TABLE orders (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    version            INTEGER NOT NULL,
    status             TEXT    NOT NULL,
    customer_id        INTEGER NOT NULL REFERENCES customers (id),
    customer_name      TEXT    NOT NULL,
    customer_firstname TEXT    NOT NULL,
    customer_email     TEXT    NOT NULL,
    ship_street        TEXT    NOT NULL,
    ship_zip           TEXT    NOT NULL,
    ship_city          TEXT    NOT NULL,
    bill_street        TEXT    NOT NULL,
    bill_zip           TEXT    NOT NULL,
    bill_city          TEXT    NOT NULL,
    total_cents        INTEGER NOT NULL,
    created_us         INTEGER NOT NULL,
    updated_us         INTEGER NOT NULL
);

CREATE TABLE order_lines (
    order_id    INTEGER NOT NULL REFERENCES orders (id),
    line_no     INTEGER NOT NULL,
    item_id     INTEGER NOT NULL,
    item_name   TEXT    NOT NULL,
    price_cents INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE idempotency_keys (
    key          TEXT PRIMARY KEY,
    request_hash TEXT    NOT NULL,
    order_id     INTEGER NOT NULL REFERENCES orders (id),
    created_us   INTEGER NOT NULL
);
