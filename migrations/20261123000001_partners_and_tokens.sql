-- Partners own everything a portal may see; a portal token is bound to one.
-- The directory issue widens this table; the license path needs only the id.
create table partners (
    id          text primary key check (id ~ '^[A-Za-z0-9._-]{1,64}$'),
    name        text not null default '',
    admin_email text,
    locale      text not null default 'ja',
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

-- Tokens are stored as SHA-256 of a 256-bit random secret: the secret has
-- full entropy, so a slow password hash would add cost and no safety.
create table api_tokens (
    id                    uuid primary key,
    name                  text not null,
    role                  text not null check (role in ('portal', 'scheduler', 'operator')),
    partner_id            text references partners (id),
    token_hash            bytea not null unique,
    rate_limit_per_second integer check (rate_limit_per_second > 0),
    created_at            timestamptz not null default now(),
    revoked_at            timestamptz,
    check ((role = 'portal') = (partner_id is not null))
);
