-- A successful attempt is filed on its job row, not as a job_attempts
-- row: the batch completer already writes the row that says the job
-- succeeded, and a second row per job (with its foreign-key check and
-- two index entries) was a fifth of what marking jobs cost. The attempts
-- table keeps the failures (retrying, dead); a job's successful attempt
-- is its `attempts`, `attempt_started_at` and `finished_at`. Rows filed
-- before this migration stay, and readers take either.
alter table jobs add column attempt_started_at timestamptz;
