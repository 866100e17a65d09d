-- fulfil's copy of the portals' world, kept in sync by idempotent PUTs.

alter table partners add constraint partners_locale check (locale in ('ja', 'en'));

-- A customer belongs to one partner, its reseller of record.
create table customers (
    id         text primary key check (id ~ '^[A-Za-z0-9._-]{1,64}$'),
    partner_id text not null references partners (id),
    name       text not null default '',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index customers_partner on customers (partner_id);

-- Partners other than the reseller of record that may act for a customer
-- (the destination of a transfer needs one).
create table reseller_relationships (
    partner_id  text not null references partners (id),
    customer_id text not null references customers (id),
    created_at  timestamptz not null default now(),
    primary key (partner_id, customer_id)
);

create table users (
    id          text primary key check (id ~ '^[A-Za-z0-9._-]{1,64}$'),
    customer_id text not null references customers (id),
    email       text not null,
    locale      text not null default 'ja' check (locale in ('ja', 'en')),
    name        text not null default '',
    status      text not null default 'active' check (status in ('active', 'moved_to_free')),
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);
create index users_customer on users (customer_id);

-- A subscription is sold by one partner at a time.
create table subscriptions (
    id          text primary key check (id ~ '^[A-Za-z0-9._-]{1,64}$'),
    customer_id text not null references customers (id),
    partner_id  text not null references partners (id),
    product     text not null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);
create index subscriptions_customer on subscriptions (customer_id);

create table role_assignments (
    id             text primary key check (id ~ '^[A-Za-z0-9._-]{1,64}$'),
    principal_type text not null check (principal_type in ('partner', 'user')),
    principal_id   text not null,
    role           text not null check (length(role) between 1 and 100),
    scope_type     text not null check (scope_type in ('customer', 'subscription')),
    scope_id       text not null,
    status         text not null default 'present' check (status in ('present', 'removed')),
    removed_at     timestamptz,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    check ((status = 'removed') = (removed_at is not null))
);
create index role_assignments_scope on role_assignments (scope_type, scope_id) where status = 'present';
create index role_assignments_principal on role_assignments (principal_type, principal_id) where status = 'present';
