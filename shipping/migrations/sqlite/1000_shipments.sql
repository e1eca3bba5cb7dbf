-- shipping's own copy of each order: what a shipment needs (no prices), newest version seen.
CREATE TABLE shipments (
    order_id      INTEGER PRIMARY KEY,
    version       INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    customer_id   INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    firstname     TEXT    NOT NULL,
    street        TEXT    NOT NULL,
    zip           TEXT    NOT NULL,
    city          TEXT    NOT NULL,
    ordered_at_us INTEGER NOT NULL
);

CREATE TABLE shipment_lines (
    order_id INTEGER NOT NULL REFERENCES shipments (order_id),
    line_no  INTEGER NOT NULL,
    item_id  INTEGER NOT NULL,
    name     TEXT    NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
