-- License orders and their requests are never deleted and never change
-- their id (a revoked order stays, as the record of its keys), so a
-- reference to one cannot dangle. Each new order checked that three
-- times over, in the statement that had just inserted the parent (its
-- request's order, each key's order and request), each check a
-- `select … for key share` that writes a lock, and its WAL record, into
-- the row just inserted. As for jobs (20261206000026), the database now
-- refuses the removal instead of checking every reference.
create trigger license_orders_kept before delete or update of id on license_orders
    for each row execute function refuse_removal();
create trigger license_requests_kept before delete or update of id on license_requests
    for each row execute function refuse_removal();

alter table license_requests drop constraint license_requests_order_id_fkey;
alter table licenses drop constraint licenses_order_id_fkey;
alter table licenses drop constraint licenses_request_id_fkey;
