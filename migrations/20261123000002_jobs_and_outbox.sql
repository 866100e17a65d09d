-- A job is the durable record of one unit of work. The broker only carries
-- a pointer to it (the envelope), so losing a message never loses a job.
create table jobs (
    id              uuid primary key,
    kind            text not null,
    version         integer not null default 1,
    payload         jsonb not null,
    status          text not null default 'queued'
                    check (status in ('queued', 'running', 'retrying', 'succeeded', 'dead')),
    attempts        integer not null default 0,
    -- Times the broker handed the job to a worker; more than attempts + 1
    -- means redeliveries, each recognised and dropped.
    deliveries      integer not null default 0,
    max_attempts    integer not null check (max_attempts > 0),
    last_error      text,
    partner_id      text references partners (id),
    token_id        uuid references api_tokens (id),
    resource_type   text,
    resource_id     uuid,
    sla_deadline    timestamptz,
    enqueued_at     timestamptz not null,
    started_at      timestamptz,
    finished_at     timestamptz,
    next_attempt_at timestamptz
);
create index jobs_status_kind on jobs (status, kind);
create index jobs_resource on jobs (resource_id);

create table job_attempts (
    job_id      uuid not null references jobs (id),
    attempt     integer not null,
    started_at  timestamptz not null,
    finished_at timestamptz not null,
    outcome     text not null check (outcome in ('succeeded', 'retrying', 'dead')),
    error       text,
    primary key (job_id, attempt)
);

-- Transactional outbox: a row is written in the same transaction as the job
-- and marked published only after the broker confirmed the message.
create table outbox (
    id           bigint generated always as identity primary key,
    job_id       uuid not null references jobs (id),
    attempt      integer not null check (attempt > 0),
    available_at timestamptz not null default now(),
    created_at   timestamptz not null default now(),
    published_at timestamptz
);
create index outbox_due on outbox (available_at) where published_at is null;

-- Wakes the relay as soon as a row commits instead of waiting for its poll.
create function outbox_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('fulfil_outbox', '');
    return null;
end;
$$;
create trigger outbox_inserted after insert on outbox
    for each statement execute function outbox_notify();

-- Dead letters: jobs out of attempts, fatal failures, and messages that were
-- never jobs at all (garbage, unknown kind), kept with the raw body.
create table dead_letters (
    id          uuid primary key,
    job_id      uuid references jobs (id),
    kind        text,
    queue       text not null,
    reason      text not null,
    body        text not null,
    attempts    integer not null default 0,
    created_at  timestamptz not null default now(),
    replayed_at timestamptz
);
create index dead_letters_open on dead_letters (created_at) where replayed_at is null;
