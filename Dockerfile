# syntax=docker/dockerfile:1
# Build:  docker build -t fulfil .        (or: docker compose build)
# Run:    see compose.yaml; the container runs `fulfil serve` by default.

# ---- builder ---------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /app

# Dependencies first: this layer is rebuilt only when Cargo.toml/Cargo.lock
# change, not on every source edit. Empty stand-ins for the crate's own
# sources let cargo compile every dependency now.
# benches/: Cargo.toml names its [[bench]] targets, and cargo refuses a
# manifest whose targets are missing, even for a build that skips them.
# .cargo/config.toml sets SQLX_OFFLINE: the query! macros read .sqlx/,
# so the build needs no database (and the dependencies are built with the
# same environment as the crate, so they are not built twice).
COPY Cargo.toml Cargo.lock ./
COPY .cargo/ .cargo/
COPY benches/ benches/
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src

# The crate itself. migrations/ is embedded at compile time by
# sqlx::migrate!, so it must be here, not only in the runtime image.
# build.rs lists src/mail/templates/, so it comes with the sources, not
# with the stand-ins above.
COPY build.rs ./
COPY src/ src/
COPY workers/ workers/
COPY .sqlx/ .sqlx/
COPY migrations/ migrations/
COPY config/ config/
# touch: COPY keeps the files' own mtimes, which can be older than the
# stand-ins built above, and cargo would then keep the empty binary. It also
# forces a rebuild when only migrations/ changed, which cargo does not track.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && install -m 0755 target/release/fulfil /usr/local/bin/fulfil

# ---- runtime ---------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: TLS to outside services; curl: the compose healthcheck.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

# Non-root. /var/lib/fulfil is created and owned here so that an empty named
# volume mounted on it starts with this ownership and is writable by fulfil.
RUN groupadd --system fulfil \
 && useradd --system --gid fulfil --home-dir /var/lib/fulfil --shell /usr/sbin/nologin fulfil \
 && mkdir -p /var/lib/fulfil/mail \
 && chown -R fulfil:fulfil /var/lib/fulfil

# fulfil reads config/default.toml relative to its working directory.
WORKDIR /app
COPY config/ config/
COPY --from=builder /usr/local/bin/fulfil /usr/local/bin/fulfil

USER fulfil
EXPOSE 8080
ENTRYPOINT ["fulfil"]
CMD ["serve"]
