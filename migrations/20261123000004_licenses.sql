create table license_orders (
    id              uuid primary key,
    partner_id      text not null references partners (id),
    customer_id     text not null,
    usage           text not null check (usage in ('virtual', 'bare_metal', 'hypervisor')),
    status          text not null default 'preparing'
                    check (status in ('preparing', 'active', 'revoked')),
    vendor_order_id text unique,
    contact_name    text not null,
    contact_email   text not null,
    contact_locale  text not null,
    created_at      timestamptz not null,
    updated_at      timestamptz not null,
    check ((status = 'preparing') or vendor_order_id is not null)
);
create index license_orders_partner on license_orders (partner_id);

-- One row per accepted change of an order (the new order itself, an
-- addition, a VM-count increase): it carries the SLA clock.
create table license_requests (
    id           uuid primary key,
    order_id     uuid not null references license_orders (id),
    kind         text not null check (kind in ('new', 'additional', 'vm_count')),
    quantity     integer check (quantity between 1 and 1000),
    license_id   uuid,
    vm_count     integer check (vm_count between 1 and 100000),
    status       text not null default 'pending' check (status in ('pending', 'done')),
    job_id       uuid not null references jobs (id),
    accepted_at  timestamptz not null,
    sla_deadline timestamptz not null,
    completed_at timestamptz,
    check ((kind = 'vm_count') = (license_id is not null and vm_count is not null)),
    check ((kind = 'vm_count') = (quantity is null))
);
-- At most one change in flight per order: the database, not only the
-- handler, refuses a second one (the API answers 409).
create unique index license_requests_one_pending
    on license_requests (order_id) where status = 'pending';

-- Rows are created 'pending' at intake, one per requested license, so the
-- worker fills existing rows: a redelivered job cannot add a second key.
create table licenses (
    id          uuid primary key,
    order_id    uuid not null references license_orders (id),
    request_id  uuid not null references license_requests (id),
    seq         integer not null check (seq > 0),
    usage       text not null check (usage in ('virtual', 'bare_metal', 'hypervisor')),
    vm_count    integer check (vm_count between 1 and 100000),
    status      text not null default 'pending' check (status in ('pending', 'issued', 'revoked')),
    key         text unique,
    certificate text,
    issued_at   timestamptz,
    unique (request_id, seq),
    check ((status = 'pending') = (key is null)),
    check ((usage = 'hypervisor') = (vm_count is not null))
);
create index licenses_order on licenses (order_id);
