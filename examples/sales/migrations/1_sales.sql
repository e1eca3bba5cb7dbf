-- Sales per item, and which version of each order they count.
CREATE TABLE item_sales (
    item_id       BIGINT PRIMARY KEY,
    name          TEXT   NOT NULL,
    pieces        BIGINT NOT NULL,
    revenue_cents BIGINT NOT NULL
);

CREATE TABLE counted_orders (
    order_id BIGINT PRIMARY KEY,
    version  BIGINT NOT NULL,
    counted  BIGINT NOT NULL
);
