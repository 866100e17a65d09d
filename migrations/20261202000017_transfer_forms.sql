-- The transfer form filled by three parties (SPEC §1.2, second round): the
-- source partner opens it, the customer (with the destination) completes it
-- through a mailed one-time link, the source submits it and a transfer
-- ticket is born. Only the link's hash is stored.
create table transfer_forms (
    id                     uuid primary key,
    customer_id            text not null references customers (id),
    source_partner_id      text not null references partners (id),
    -- Named by the customer at completion.
    destination_partner_id text references partners (id),
    status                 text not null default 'draft'
                           check (status in ('draft', 'returned', 'submitted', 'withdrawn', 'expired')),
    source_contact         jsonb not null,
    customer_contact       jsonb,
    destination_contact    jsonb,
    -- Where the link went, and in which language.
    admin_email            text not null,
    locale                 text not null check (locale in ('ja', 'en')),
    token_hash             bytea not null unique,
    -- The ticket its submission created.
    transfer_id            uuid unique references transfers (id),
    token_id               uuid references api_tokens (id),
    expires_at             timestamptz not null,
    created_at             timestamptz not null,
    updated_at             timestamptz not null,
    returned_at            timestamptz,
    submitted_at           timestamptz,
    withdrawn_at           timestamptz,
    check (destination_partner_id is null or destination_partner_id <> source_partner_id),
    -- The customer's part is filled in all at once, or not at all.
    check ((destination_partner_id is null) = (customer_contact is null)
           and (customer_contact is null) = (destination_contact is null)
           and (customer_contact is null) = (returned_at is null)),
    check (status not in ('returned', 'submitted') or returned_at is not null),
    check ((status = 'submitted') = (transfer_id is not null)),
    check ((status = 'withdrawn') = (withdrawn_at is not null))
);
create index transfer_forms_source on transfer_forms (source_partner_id);
create index transfer_forms_destination on transfer_forms (destination_partner_id)
    where destination_partner_id is not null;

create table transfer_form_subscriptions (
    form_id         uuid not null references transfer_forms (id),
    subscription_id text not null references subscriptions (id),
    primary key (form_id, subscription_id)
);
