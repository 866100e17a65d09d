-- Relationships are granted by the party that gives access (SPEC §1.5):
-- a customer accepts a reseller's request through a mailed one-time link,
-- a reseller accepts a provider's partnership invitation. Only the links'
-- hashes are stored.

-- An indirect provider and an indirect reseller. One live (invited or
-- active) partnership per pair.
create table partnerships (
    id          uuid primary key,
    provider_id text not null references partners (id),
    reseller_id text not null references partners (id),
    token_hash  bytea not null unique,
    status      text not null default 'invited'
                check (status in ('invited', 'active', 'declined', 'expired', 'ended')),
    expires_at  timestamptz not null,
    created_at  timestamptz not null,
    decided_at  timestamptz,
    ended_at    timestamptz,
    token_id    uuid references api_tokens (id),
    check (provider_id <> reseller_id),
    check ((status = 'ended') = (ended_at is not null))
);
create unique index partnerships_one_live on partnerships (provider_id, reseller_id)
    where status in ('invited', 'active');
create index partnerships_reseller on partnerships (reseller_id);

-- A partner asks a customer for a reseller relationship; with a provider
-- (two-tier), acceptance grants the provider one too.
create table relationship_requests (
    id             uuid primary key,
    partner_id     text not null references partners (id),
    customer_id    text not null references customers (id),
    provider_id    text references partners (id),
    partnership_id uuid references partnerships (id),
    admin_email    text not null,
    locale         text not null check (locale in ('ja', 'en')),
    token_hash     bytea not null unique,
    status         text not null default 'invited'
                   check (status in ('invited', 'active', 'declined', 'expired')),
    expires_at     timestamptz not null,
    created_at     timestamptz not null,
    decided_at     timestamptz,
    token_id       uuid references api_tokens (id),
    check ((provider_id is null) = (partnership_id is null))
);
create unique index relationship_requests_one_open on relationship_requests (partner_id, customer_id)
    where status = 'invited';
create index relationship_requests_customer on relationship_requests (customer_id);

-- A relationship is active until the customer's partner of record, the
-- partner itself or an operator ends it. Only active ones grant access.
alter table reseller_relationships
    add column id             uuid not null default gen_random_uuid() unique,
    add column status         text not null default 'active' check (status in ('active', 'ended')),
    add column granted_by     text not null default 'directory'
                              check (granted_by in ('directory', 'invitation')),
    add column request_id     uuid references relationship_requests (id),
    add column partnership_id uuid references partnerships (id),
    add column ended_at       timestamptz,
    add column updated_at     timestamptz not null default now(),
    add constraint reseller_relationships_ended check ((status = 'ended') = (ended_at is not null));
create index reseller_relationships_customer on reseller_relationships (customer_id)
    where status = 'active';
create index reseller_relationships_partnership on reseller_relationships (partnership_id)
    where status = 'active';
