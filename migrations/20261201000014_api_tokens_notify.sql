-- Processes cache token lookups; any change of a token (a revocation, a
-- new rate limit) tells them to forget what they cached.
create function api_tokens_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('fulfil_tokens', '');
    return null;
end
$$;

create trigger api_tokens_changed after update or delete on api_tokens
    for each statement execute function api_tokens_notify();
