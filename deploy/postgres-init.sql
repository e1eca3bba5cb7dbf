-- One database per service (bounded contexts share no tables). Run once on an empty server.
CREATE DATABASE feedline_order;
CREATE DATABASE feedline_invoicing;
CREATE DATABASE feedline_shipping;
