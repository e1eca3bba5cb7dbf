# One image for every Feedline service; the command picks it: order, invoicing, shipping, or
# feedline (all-in-one). Build: docker build -t feedline .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --workspace --bins

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/feedline --create-home feedline
COPY --from=build /src/target/release/feedline /src/target/release/order \
     /src/target/release/invoicing /src/target/release/shipping /usr/local/bin/
USER feedline
WORKDIR /var/lib/feedline
ENV RUST_LOG=info LOG_FORMAT=json
EXPOSE 8080 8081 8082 8083
CMD ["feedline", "--bind", "0.0.0.0:8080"]
