-- The SLA watch's record: one row per license request and stage, written
-- in the transaction that queues the operators' mail, so each request is
-- announced once when it nears its deadline and once when it breaches.
create table sla_alerts (
    request_id uuid not null references license_requests (id),
    stage      text not null check (stage in ('at_risk', 'breached')),
    alerted_at timestamptz not null,
    primary key (request_id, stage)
);

-- The watch scans open requests by deadline, and the SLA report by the
-- time intake accepted them.
create index license_requests_open_deadline on license_requests (sla_deadline)
    where status = 'pending';
create index license_requests_accepted on license_requests (accepted_at);

-- The dashboard's throughput, latency and recent failures read the last
-- hour of attempts and finished jobs.
create index job_attempts_finished on job_attempts (finished_at);
create index jobs_finished on jobs (finished_at) where status = 'succeeded';
