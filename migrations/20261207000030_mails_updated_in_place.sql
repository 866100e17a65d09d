-- A mail row is written once and then updated when it is sent (or fails).
-- Its status is in no index, so that update can stay on the row's page as
-- a heap-only tuple (no new entry in its three indexes, and WAL for the
-- changed bytes only), but only if the page has room for a second version.
-- A mail row is about 1.9 kB, so a full page held four and had room for
-- none: in the drain benchmark, 945 of 20,000 updates stayed on their page.
-- Half-filled pages leave room for each row's sent version. This applies
-- to pages written from now on.
alter table mails set (fillfactor = 50);
