-- No planner statistics for the columns that only carry content: no
-- statement filters, joins or sorts on a job's payload, an audit event's
-- detail, a mail's text or a key's certificate, so their histograms
-- never change a plan. They were most of what an ANALYZE of the busy
-- tables cost (mails 127 ms, of which body, subject and attachments
-- 102 ms, at 20,000 orders), and fulfil analyses its tables while they
-- grow (store::statistics), on the same cores that answer requests.
alter table audit_events alter column detail set statistics 0;
alter table jobs alter column payload set statistics 0;
alter table jobs alter column last_error set statistics 0;
alter table job_attempts alter column error set statistics 0;
alter table mails alter column body set statistics 0;
alter table mails alter column subject set statistics 0;
alter table mails alter column attachments set statistics 0;
alter table mails alter column last_error set statistics 0;
alter table licenses alter column certificate set statistics 0;
alter table idempotency_keys alter column response_body set statistics 0;
alter table idempotency_keys alter column request_fingerprint set statistics 0;
