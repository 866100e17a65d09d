-- The relay claims unpublished rows in id order. `outbox_due` is ordered
-- by available_at, so a claim read it as a bitmap and sorted, visiting
-- every row published since the last vacuum (a bitmap scan never marks
-- dead index entries): 9 ms a claim in the drain benchmark, and growing.
-- In id order the claim is an index scan that stops at its limit and
-- marks the published entries it passes, so the next claim skips them.
create index outbox_unpublished on outbox (id) where published_at is null;
