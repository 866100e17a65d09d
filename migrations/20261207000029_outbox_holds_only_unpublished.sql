-- The outbox is the queue of messages still to be published, not their
-- history: the job row is the record. A row is now deleted once the broker
-- confirmed its message, or once the in-process attempt it was handed to
-- commits. Marking it published wrote a second row version and a
-- primary-key entry, twice an order (the order's job and its mail's), and
-- kept every row for good, since nothing ever pruned them. A deleted row
-- writes neither.
delete from outbox where published_at is not null;
drop index outbox_due;
drop index outbox_unpublished;
alter table outbox drop column published_at;
-- The relay claims in id order (the primary key) and sleeps until the
-- earliest available_at.
create index outbox_due on outbox (available_at);
