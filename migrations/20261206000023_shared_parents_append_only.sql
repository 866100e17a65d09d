-- Every order's rows named its partner and its token through foreign
-- keys: six checks per order at intake and one per mail, each a
-- `select … for key share` of the same partner row and the same token
-- row that every concurrent order locks too. Shared locks of one row by
-- many transactions make a new multixact per locker; with all triggers
-- off for a run the intake went from 2,903-3,014 to 3,997 orders/s.
--
-- Partners and tokens are never deleted (a token is revoked by
-- `revoked_at`, a partner stays in the directory) and never change
-- their id, so a reference to one cannot dangle: that is now what the
-- database enforces, on the cold side, instead of checking each hot
-- row. References to per-order rows (jobs, orders, requests) keep their
-- foreign keys: those lock rows no other order touches.
create function refuse_removal() returns trigger language plpgsql as $$
begin
    raise exception '% rows are never deleted and keep their id (revoke or update instead)',
        tg_table_name
        using errcode = '23503';
end;
$$;

create trigger partners_kept before delete or update of id on partners
    for each row execute function refuse_removal();
create trigger api_tokens_kept before delete or update of id on api_tokens
    for each row execute function refuse_removal();

alter table jobs drop constraint jobs_partner_id_fkey;
alter table jobs drop constraint jobs_token_id_fkey;
alter table idempotency_keys drop constraint idempotency_keys_token_id_fkey;
alter table license_orders drop constraint license_orders_partner_id_fkey;
alter table audit_events drop constraint audit_events_token_id_fkey;
