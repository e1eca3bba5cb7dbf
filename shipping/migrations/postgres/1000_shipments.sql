-- shipping's own copy of each order: what a shipment needs (no prices), newest version seen.
CREATE TABLE shipments (
    order_id      BIGINT PRIMARY KEY,
    version       BIGINT  NOT NULL,
    status        TEXT    NOT NULL,
    customer_id   BIGINT  NOT NULL,
    name          TEXT    NOT NULL,
    firstname     TEXT    NOT NULL,
    street        TEXT    NOT NULL,
    zip           TEXT    NOT NULL,
    city          TEXT    NOT NULL,
    ordered_at_us BIGINT  NOT NULL
);

CREATE TABLE shipment_lines (
    order_id BIGINT  NOT NULL REFERENCES shipments (order_id),
    line_no  BIGINT  NOT NULL,
    item_id  BIGINT  NOT NULL,
    name     TEXT    NOT NULL,
    count    BIGINT  NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
