-- Trial changes while they run (SPEC §1.3, second round): the paid
-- services a customer holds, and the purchase requests sent from a trial.
-- Services added to a trial extend `trials.services` and `trial_licenses`
-- (one license per added service and member), so the purge needs nothing new.

-- A customer's paid services, one row per kind: from a converted trial
-- (`converted`, naming it) or a direct sale an operator or the partner of
-- record recorded in the directory (`direct`). While a kind is here, the
-- customer cannot start a trial of it.
create table customer_services (
    -- The audit trail keys entities by uuid.
    id          uuid not null unique,
    customer_id text not null references customers (id),
    kind        text not null check (kind ~ '^[a-z0-9._-]{1,64}$'),
    source      text not null check (source in ('converted', 'direct')),
    trial_id    uuid references trials (id),
    token_id    uuid references api_tokens (id),
    recorded_at timestamptz not null,
    primary key (customer_id, kind),
    check ((source = 'converted') = (trial_id is not null))
);

-- A request to buy, sent from a trial to the partner admin (mailed once:
-- the mail's cause is this row).
create table trial_purchase_requests (
    id         uuid primary key,
    trial_id   uuid not null references trials (id),
    services   text[] not null check (cardinality(services) > 0),
    note       text check (length(note) <= 1000),
    token_id   uuid references api_tokens (id),
    created_at timestamptz not null
);
create index trial_purchase_requests_trial on trial_purchase_requests (trial_id, created_at);
