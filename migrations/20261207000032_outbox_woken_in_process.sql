-- A session that sets `fulfil.wakes_relay` runs in a process with a relay
-- of its own and wakes that relay after its commit (`RelayWake`): it is
-- not notified for. A notifying transaction holds a cluster-wide lock
-- until its commit is flushed, so the intake's group commits waited for
-- each other's WAL flush; and every relay of every process read every
-- notification. Other sessions notify as before.
create or replace function outbox_notify() returns trigger language plpgsql as $$
begin
    if current_setting('fulfil.wakes_relay', true) is distinct from 'on'
       and exists (select from inserted where available_at <= now() or attempt > 1) then
        perform pg_notify('fulfil_outbox', '');
    end if;
    return null;
end;
$$;
