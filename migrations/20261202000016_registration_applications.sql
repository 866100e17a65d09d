-- The sign-up application and its review (SPEC §1.4, second round):
-- completing the link carries an application, which waits (`applied`) for
-- an operator to approve it (the service starts) or reject it (a reason).
alter table registrations drop constraint registrations_check;
alter table registrations drop constraint registrations_check1;
alter table registrations drop constraint registrations_status_check;

alter table registrations
    add column application      jsonb,
    add column reviewed_at      timestamptz,
    add column reviewed_by      uuid references api_tokens (id),
    add column rejection_reason text check (length(rejection_reason) between 1 and 1000),
    -- What approval put in the directory: the customer and its contractor.
    add column customer_id      text references customers (id),
    add column user_id          text references users (id);

-- First-round completions had no application: one started is approved,
-- the others wait for review.
update registrations set status = 'approved', reviewed_at = started_at
 where status = 'completed' and started_at is not null;
update registrations set status = 'applied' where status = 'completed';

alter table registrations add constraint registrations_status_check
    check (status in ('pending', 'applied', 'approved', 'rejected', 'expired'));
-- `completed_at` is when the link was completed with the application.
alter table registrations add constraint registrations_applied
    check ((status in ('applied', 'approved', 'rejected')) = (completed_at is not null));
alter table registrations add constraint registrations_reviewed
    check ((status in ('approved', 'rejected')) = (reviewed_at is not null));
alter table registrations add constraint registrations_started
    check ((status = 'approved') = (started_at is not null));
alter table registrations add constraint registrations_rejected
    check ((status = 'rejected') = (rejection_reason is not null));

-- One application in progress per address: a second sign-up is refused,
-- and of two racing ones the second insert loses. Older duplicates from
-- the first round are let go.
update registrations set status = 'expired'
 where status = 'pending'
   and id not in (select distinct on (lower(email)) id from registrations
                   where status in ('pending', 'applied')
                   order by lower(email), (status = 'applied') desc, created_at desc);
create unique index registrations_in_progress on registrations (lower(email))
    where status in ('pending', 'applied');
-- The operators' review queue, oldest application first.
create index registrations_applied_queue on registrations (completed_at) where status = 'applied';
