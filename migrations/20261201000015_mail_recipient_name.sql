-- The recipient's name as fulfil knows it (an order's contact, a transfer
-- form's contact, a trial user), for the To: header's display name.
alter table mails add column recipient_name text;
