-- Scheduled runs are pruned by age after every tick; this keeps that
-- delete an index range scan however long the table has grown.
create index sweep_runs_scheduled_started on sweep_runs (started_at)
    where trigger = 'schedule';
