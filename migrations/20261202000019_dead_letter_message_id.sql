-- The AMQP message id a dead letter arrived with: how an operator finds a
-- message that was never a job (its body names no job, or garbage).
alter table dead_letters add column message_id text;
