-- The check that a revoked order has no live key (20261123000004) ran
-- for every key written and every order status changed, and read the
-- order id through to_jsonb(new): the whole row, certificate and all,
-- turned into JSON for one column. Now the id is read as a field, and
-- an order's trigger fires only when the order becomes revoked, the
-- only change of an order that can break the rule.
create or replace function license_order_has_no_live_key_when_revoked() returns trigger
language plpgsql as $$
declare
    checked uuid;
begin
    if tg_table_name = 'licenses' then
        checked := new.order_id;
    else
        checked := new.id;
    end if;
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

drop trigger revoked_order_has_no_live_key_orders on license_orders;
create constraint trigger revoked_order_has_no_live_key_orders
    after update of status on license_orders deferrable initially deferred
    for each row when (new.status = 'revoked')
    execute function license_order_has_no_live_key_when_revoked();

drop trigger revoked_order_has_no_live_key_licenses on licenses;
create constraint trigger revoked_order_has_no_live_key_licenses
    after insert or update of status on licenses deferrable initially deferred
    for each row when (new.status <> 'revoked')
    execute function license_order_has_no_live_key_when_revoked();
