-- Saved first responses, per calling token. The row commits in the same
-- transaction as the work it answers for, so a saved response always means
-- the work happened, and a crash leaves no half-finished key behind.
create table idempotency_keys (
    token_id            uuid not null references api_tokens (id),
    key                 text not null check (length(key) between 1 and 255),
    request_fingerprint bytea not null,
    response_status     smallint not null,
    response_body       jsonb not null,
    created_at          timestamptz not null default now(),
    primary key (token_id, key)
);
create index idempotency_keys_age on idempotency_keys (created_at);
