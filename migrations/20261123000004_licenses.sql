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
    revoked_at      timestamptz,
    -- Set once, under the order's lock: an order is revoked by one job.
    revocation_job_id uuid unique,
    check ((status = 'preparing') or vendor_order_id is not null),
    check ((status = 'revoked') = (revoked_at is not null))
);
create index license_orders_partner on license_orders (partner_id);

-- One row per accepted change of an order (the new order itself, an
-- addition, a VM-count increase, a cancellation): it carries the SLA clock.
create table license_requests (
    id           uuid primary key,
    order_id     uuid not null references license_orders (id),
    kind         text not null check (kind in ('new', 'additional', 'vm_count', 'cancellation')),
    quantity     integer check (quantity between 1 and 1000),
    license_id   uuid,
    vm_count     integer check (vm_count between 1 and 100000),
    -- The keys a cancellation revokes.
    license_ids  uuid[] check (cardinality(license_ids) between 1 and 1000),
    status       text not null default 'pending' check (status in ('pending', 'done')),
    job_id       uuid not null references jobs (id),
    accepted_at  timestamptz not null,
    sla_deadline timestamptz not null,
    completed_at timestamptz,
    check ((kind = 'vm_count') = (license_id is not null and vm_count is not null)),
    check ((kind in ('new', 'additional')) = (quantity is not null)),
    check ((kind = 'cancellation') = (license_ids is not null))
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
    revoked_at  timestamptz,
    unique (request_id, seq),
    check ((status = 'pending') = (key is null)),
    check ((status = 'revoked') = (revoked_at is not null)),
    check ((usage = 'hypervisor') = (vm_count is not null))
);
create index licenses_order on licenses (order_id);

-- A revoked order never has a live key, and an order is never revoked while
-- one lives: checked at commit, whichever table the change touched.
create function license_order_has_no_live_key_when_revoked() returns trigger
language plpgsql as $$
declare
    -- The trigger's argument names the column holding the order id.
    checked uuid := (to_jsonb(new) ->> tg_argv[0])::uuid;
begin
    if exists (
        select 1 from license_orders o join licenses l on l.order_id = o.id
        where o.id = checked and o.status = 'revoked' and l.status <> 'revoked'
    ) then
        raise exception 'license order % is revoked but still has a live key', checked
            using errcode = '23514', constraint = 'revoked_order_has_no_live_key';
    end if;
    return null;
end;
$$;
create constraint trigger revoked_order_has_no_live_key_orders
    after update of status on license_orders deferrable initially deferred
    for each row execute function license_order_has_no_live_key_when_revoked('id');
create constraint trigger revoked_order_has_no_live_key_licenses
    after insert or update of status on licenses deferrable initially deferred
    for each row execute function license_order_has_no_live_key_when_revoked('order_id');
