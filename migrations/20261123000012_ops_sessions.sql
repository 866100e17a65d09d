-- Dashboard sign-ins. The browser holds a random session secret, never the
-- operator token; only its hash is stored. A session ends at expires_at,
-- at sign-out, or when its token is revoked.
create table ops_sessions (
    id          uuid primary key,
    secret_hash bytea not null unique,
    token_id    uuid not null references api_tokens (id),
    created_at  timestamptz not null,
    expires_at  timestamptz not null
);
create index ops_sessions_expires on ops_sessions (expires_at);
