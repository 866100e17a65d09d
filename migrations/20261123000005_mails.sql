-- One row per mail, written with the state change that causes it. `cause`
-- is unique, so one cause can never produce a second mail.
create table mails (
    id          uuid primary key,
    cause       text not null unique,
    message_id  text not null unique,
    template    text not null,
    locale      text not null,
    recipient   text not null,
    subject     text not null,
    body        text not null,
    attachments jsonb not null default '[]',
    status      text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
    -- Deferred: the mail row goes in first (its unique cause decides whether
    -- there is anything to send), then the job that sends it.
    job_id      uuid not null references jobs (id) deferrable initially deferred,
    created_at  timestamptz not null,
    sent_at     timestamptz,
    last_error  text
);
