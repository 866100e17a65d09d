-- Jobs are never deleted and never change their id (a finished job stays
-- as the record of its attempts), so a reference to one cannot dangle.
-- Each order checked it four times over (its outbox row, its request,
-- its "change accepted" event, and its mail's outbox row), each check a
-- `select … for key share` that writes a lock into the job row it just
-- inserted. The database now enforces the cold side, as for partners and
-- tokens (20261206000023), instead of checking every hot row. The cold
-- references (failed attempts, dead letters, trial notices) keep theirs.
create trigger jobs_kept before delete or update of id on jobs
    for each row execute function refuse_removal();

alter table outbox drop constraint outbox_job_id_fkey;
alter table license_requests drop constraint license_requests_job_id_fkey;
alter table audit_events drop constraint audit_events_job_id_fkey;
alter table mails drop constraint mails_job_id_fkey;

-- Counted by status and kind only while jobs wait or run (the queue
-- figures, `fulfil queues`); finished jobs are found by their
-- `finished_at` (jobs_finished). A job marked succeeded no longer adds an
-- entry to this index.
drop index jobs_status_kind;
create index jobs_unfinished_kind on jobs (kind, status)
    where status in ('queued', 'running', 'retrying');
