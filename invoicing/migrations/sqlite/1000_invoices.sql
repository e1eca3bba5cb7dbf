-- invoicing's own copy of each order: what an invoice needs, as of the newest version seen.
CREATE TABLE invoices (
    order_id      INTEGER PRIMARY KEY,
    version       INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    customer_id   INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    firstname     TEXT    NOT NULL,
    email         TEXT    NOT NULL,
    street        TEXT    NOT NULL,
    zip           TEXT    NOT NULL,
    city          TEXT    NOT NULL,
    total_cents   INTEGER NOT NULL,
    ordered_at_us INTEGER NOT NULL
);

CREATE TABLE invoice_lines (
    order_id         INTEGER NOT NULL REFERENCES invoices (order_id),
    line_no          INTEGER NOT NULL,
    item_id          INTEGER NOT NULL,
    name             TEXT    NOT NULL,
    price_cents      INTEGER NOT NULL,
    count            INTEGER NOT NULL,
    line_total_cents INTEGER NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
