-- A mail that a process sends itself (its workers queued it and it runs
-- `mail.send`) no longer gets a `mail.send` job unless it needs one. The
-- job row (an insert and an update), its outbox row (an insert and a
-- delete) and the attempt's lock and mark were four row writes and three
-- statements a mail, for a send that took a few milliseconds.
--
-- `handoff_until` is set on such a mail: until then it is its process's
-- to send. Past it, and still set, that process did not send it (it died,
-- or its transaction did not commit): any relay then gives the mail its
-- job, under the `job_id` the mail was written with, and clears it. The
-- send clears it too. Clearing an indexed column writes the sent version
-- with new index entries (no heap-only update for these mails, unlike the
-- mails of migration 20261207000030): two entries, against the job's and
-- the outbox row's six.
--
-- `partner_id` is the partner the job is scoped to, once there is one.
alter table mails add column partner_id text;
alter table mails add column handoff_until timestamptz;
create index mails_handed_off on mails (handoff_until) where handoff_until is not null;
