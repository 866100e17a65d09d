-- Service trials: a customer's trial organisation, its notices, and the
-- irreversible purge at the end of grace (SPEC §1.3).

create table trials (
    id                  uuid primary key,
    customer_id         text not null references customers (id),
    partner_id          text not null references partners (id),
    services            text[] not null check (cardinality(services) > 0),
    status              text not null default 'active'
                        check (status in ('active', 'expired', 'converted', 'purged')),
    ends_at             timestamptz not null,
    -- Set while expired: when the purge becomes due.
    grace_ends_at       timestamptz,
    extensions          integer not null default 0 check (extensions >= 0),
    customer_admin      jsonb not null,
    partner_admin       jsonb not null,
    token_id            uuid references api_tokens (id),
    created_at          timestamptz not null,
    updated_at          timestamptz not null,
    converted_at        timestamptz,
    purged_at           timestamptz,
    check ((status = 'expired') = (grace_ends_at is not null)),
    check ((status = 'converted') = (converted_at is not null)),
    check ((status = 'purged') = (purged_at is not null))
);
create index trials_customer on trials (customer_id);
-- What the sweeps scan: only trials that can still change by time.
create index trials_open on trials (ends_at) where status in ('active', 'expired');

-- The trial organisation's members: directory users of the customer.
create table trial_users (
    trial_id uuid not null references trials (id),
    user_id  text not null references users (id),
    primary key (trial_id, user_id)
);

-- What a purge deletes: the organisation's trial licenses, admin roles
-- and settings. Rows are gone after the purge; the audit row counts them.
create table trial_licenses (
    trial_id uuid not null references trials (id),
    service  text not null,
    user_id  text not null references users (id),
    primary key (trial_id, service, user_id)
);

create table trial_admin_roles (
    trial_id  uuid not null references trials (id),
    principal text not null check (principal in ('customer_admin', 'partner_admin')),
    email     text not null,
    role      text not null,
    primary key (trial_id, principal)
);

create table trial_settings (
    trial_id uuid primary key references trials (id),
    settings jsonb not null
);

-- Calling numbers: reserved by one trial at a time until released.
create table trial_numbers (
    trial_id    uuid not null references trials (id),
    number      text not null check (number ~ '^\+?[0-9]{4,15}$'),
    status      text not null default 'reserved' check (status in ('reserved', 'held', 'released')),
    -- While held after a purge: when the number-release sweep frees it.
    release_at  timestamptz,
    released_at timestamptz,
    primary key (trial_id, number),
    check ((status = 'held') = (release_at is not null and released_at is null))
);
create unique index trial_numbers_in_use on trial_numbers (number) where status <> 'released';
create index trial_numbers_held on trial_numbers (release_at) where status = 'held';

-- Each notice once per trial, kind and term (an extension starts a new
-- term with its own notices). `skipped` records a notice whose moment
-- passed before any sweep reached it, so it is never sent late.
create table trial_notices (
    trial_id  uuid not null references trials (id),
    kind      text not null check (kind in ('expiring', 'expired', 'purged')),
    term_ends timestamptz not null,
    outcome   text not null check (outcome in ('sent', 'skipped')),
    at        timestamptz not null,
    job_id    uuid references jobs (id),
    primary key (trial_id, kind, term_ends)
);

-- Provisional sign-ups: a one-time link (only its hash is stored).
create table registrations (
    id           uuid primary key,
    partner_id   text references partners (id),
    token_hash   bytea not null unique,
    email        text not null,
    locale       text not null check (locale in ('ja', 'en')),
    status       text not null default 'pending' check (status in ('pending', 'completed', 'expired')),
    expires_at   timestamptz not null,
    created_at   timestamptz not null,
    completed_at timestamptz,
    started_at   timestamptz,
    token_id     uuid references api_tokens (id),
    check ((status = 'completed') = (completed_at is not null)),
    check (started_at is null or completed_at is not null)
);

-- One scheduled firing per sweep and tick across every scheduler replica:
-- the replica whose insert wins runs it. Manual runs have no tick.
create table sweep_runs (
    id          uuid primary key,
    sweep       text not null,
    tick        timestamptz,
    trigger     text not null check (trigger in ('schedule', 'api', 'cli')),
    replica     text not null,
    dry_run     boolean not null default false,
    token_id    uuid references api_tokens (id),
    started_at  timestamptz not null,
    finished_at timestamptz,
    due         integer,
    published   integer,
    unique (sweep, tick)
);

-- A job that must not be queued twice while one is pending (a sweep that
-- runs again before the workers caught up) carries a unique key.
alter table jobs add column unique_key text;
create unique index jobs_pending_unique on jobs (unique_key)
    where unique_key is not null and status in ('queued', 'running', 'retrying');
