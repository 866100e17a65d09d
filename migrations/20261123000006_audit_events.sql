-- Every state change, with who asked (the token) and what did it (the
-- job): the order history the API shows, and the trail operators query.
create table audit_events (
    id          bigint generated always as identity primary key,
    at          timestamptz not null,
    entity_type text not null,
    entity_id   uuid not null,
    action      text not null,
    from_state  text,
    to_state    text,
    token_id    uuid references api_tokens (id),
    job_id      uuid references jobs (id),
    detail      jsonb not null default '{}'
);
create index audit_events_entity on audit_events (entity_id, at);
create index audit_events_at on audit_events (at);
