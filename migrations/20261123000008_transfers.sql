-- Transfer tickets: subscriptions of one customer move from a source
-- partner to a destination partner, then the source's roles go.
create table transfers (
    id                     uuid primary key,
    customer_id            text not null references customers (id),
    source_partner_id      text not null references partners (id),
    destination_partner_id text not null references partners (id),
    status                 text not null default 'submitted'
                           check (status in ('submitted', 'switching', 'cleaning_roles', 'completed',
                                             'rejected', 'failed', 'expired', 'cancelled')),
    -- Why it was rejected, or the error it failed with.
    reason                 text,
    -- The transfer form: the customer's and both partners' contacts.
    form                   jsonb not null,
    token_id               uuid references api_tokens (id),
    created_at             timestamptz not null,
    updated_at             timestamptz not null,
    expires_at             timestamptz not null,
    completed_at           timestamptz,
    check (source_partner_id <> destination_partner_id),
    check ((status in ('rejected', 'failed')) = (reason is not null))
);
create index transfers_destination on transfers (destination_partner_id);

create table transfer_subscriptions (
    transfer_id     uuid not null references transfers (id),
    subscription_id text not null references subscriptions (id),
    primary key (transfer_id, subscription_id)
);

-- Who sold a subscription when: one row per switch.
create table subscription_history (
    id              bigint generated always as identity primary key,
    subscription_id text not null references subscriptions (id),
    from_partner_id text not null references partners (id),
    to_partner_id   text not null references partners (id),
    transfer_id     uuid references transfers (id),
    at              timestamptz not null
);
create index subscription_history_subscription on subscription_history (subscription_id, at);
