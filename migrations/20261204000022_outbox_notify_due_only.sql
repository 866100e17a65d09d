-- Rows held back for an in-process handoff (`mail::handoff`, always a
-- first attempt) are not due yet: waking the relay for them costs it a
-- claim that finds nothing. A retry still notifies, so that the relay
-- sleeps until it is due rather than for its whole poll interval.
drop trigger outbox_inserted on outbox;

create or replace function outbox_notify() returns trigger language plpgsql as $$
begin
    if exists (select from inserted where available_at <= now() or attempt > 1) then
        perform pg_notify('fulfil_outbox', '');
    end if;
    return null;
end;
$$;

create trigger outbox_inserted after insert on outbox
    referencing new table as inserted
    for each statement execute function outbox_notify();
