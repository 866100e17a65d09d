-- An order wrote about forty-five index entries from its intake to its
-- mail; a B-tree entry costs a descent, a page change and a WAL record.
-- These indexes keep what they are for and take fewer entries.

-- Unique among the values that are set. A NULL never conflicted, but
-- each row still took an entry for it: an order has no vendor order id
-- until it is issued and no revocation job until it is revoked, and a key
-- is pending until it is issued. Lookups by these columns (`key = $1`)
-- imply the value is set, so they use the partial index.
alter table license_orders drop constraint license_orders_vendor_order_id_key;
create unique index license_orders_vendor_order_id on license_orders (vendor_order_id)
    where vendor_order_id is not null;
alter table license_orders drop constraint license_orders_revocation_job_id_key;
create unique index license_orders_revocation_job_id on license_orders (revocation_job_id)
    where revocation_job_id is not null;
alter table licenses drop constraint licenses_key_key;
create unique index licenses_key on licenses (key) where key is not null;

-- A Message-ID is derived from the mail's cause (a SHA-256 prefix of it,
-- `mail::message::message_id_for`), and the cause is unique: a second
-- unique index on the Message-ID checked the same thing again. Nothing
-- looks a mail up by it.
alter table mails drop constraint mails_message_id_key;

-- Time columns that only ever grow with the row's place in the table
-- (rows are appended in time order, and an update writes its new version
-- at the end) are read by range, for a window of the recent past: a BRIN
-- index answers that from a summary per block range, and an insert into
-- the last, unsummarised range costs nothing.
drop index audit_events_at;
create index audit_events_at on audit_events using brin (at);
drop index license_requests_accepted;
create index license_requests_accepted on license_requests using brin (accepted_at);
drop index idempotency_keys_age;
create index idempotency_keys_age on idempotency_keys using brin (created_at);
drop index jobs_finished;
create index jobs_finished on jobs using brin (finished_at) where status = 'succeeded';

-- No query reads jobs by their resource: a request, a mail or a dead
-- letter names its job, and the audit trail names the job of each change.
-- The index took an entry for every job, and another at every change of
-- its status: four an order.
drop index jobs_resource;
