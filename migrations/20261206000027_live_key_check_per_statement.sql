-- A live key under a revoked order was checked once per key written:
-- a deferred row trigger, queued for every license inserted at intake
-- and again for every key issued, each a plpgsql call and a query at
-- commit (4 % of PostgreSQL's time in an end-to-end run). The check now
-- runs once per statement, over the rows the statement wrote. It need
-- not wait for the commit: a revoked order stays revoked, so a key
-- written live under one is wrong at once; revoking an order that still
-- has live keys is still caught at commit by the order's own trigger.
create function licenses_live_under_revoked_order() returns trigger
language plpgsql as $$
declare
    broken uuid;
begin
    -- One probe of each written key's order by its primary key: as a
    -- join, the planner read every order with `status = 'revoked'` as a
    -- filter (it expects next to none), a scan of the whole table per
    -- statement.
    select l.order_id into broken
    from written l
    where l.status <> 'revoked'
      and (select o.status from license_orders o where o.id = l.order_id) = 'revoked'
    limit 1;
    if found then
        raise exception 'license order % is revoked but still has a live key', broken
            using errcode = '23514', constraint = 'revoked_order_has_no_live_key';
    end if;
    return null;
end;
$$;

drop trigger revoked_order_has_no_live_key_licenses on licenses;

-- The order's deferred trigger is now the only user of its function, so
-- the branch that read a key's order is gone.
create or replace function license_order_has_no_live_key_when_revoked() returns trigger
language plpgsql as $$
begin
    if exists (
        select 1 from license_orders o join licenses l on l.order_id = o.id
        where o.id = new.id and o.status = 'revoked' and l.status <> 'revoked'
    ) then
        raise exception 'license order % is revoked but still has a live key', new.id
            using errcode = '23514', constraint = 'revoked_order_has_no_live_key';
    end if;
    return null;
end;
$$;

-- A trigger with a transition table has one event, so two.
create trigger licenses_inserted_live_under_revoked_order
    after insert on licenses referencing new table as written
    for each statement execute function licenses_live_under_revoked_order();
create trigger licenses_updated_live_under_revoked_order
    after update on licenses referencing new table as written
    for each statement execute function licenses_live_under_revoked_order();
