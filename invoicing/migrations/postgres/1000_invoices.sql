-- invoicing's own copy of each order: what an invoice needs, as of the newest version seen.
CREATE TABLE invoices (
    order_id      BIGINT PRIMARY KEY,
    version       BIGINT  NOT NULL,
    status        TEXT    NOT NULL,
    customer_id   BIGINT  NOT NULL,
    name          TEXT    NOT NULL,
    firstname     TEXT    NOT NULL,
    email         TEXT    NOT NULL,
    street        TEXT    NOT NULL,
    zip           TEXT    NOT NULL,
    city          TEXT    NOT NULL,
    total_cents   BIGINT  NOT NULL,
    ordered_at_us BIGINT  NOT NULL
);

CREATE TABLE invoice_lines (
    order_id         BIGINT  NOT NULL REFERENCES invoices (order_id),
    line_no          BIGINT  NOT NULL,
    item_id          BIGINT  NOT NULL,
    name             TEXT    NOT NULL,
    price_cents      BIGINT  NOT NULL,
    count            BIGINT  NOT NULL,
    line_total_cents BIGINT  NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
