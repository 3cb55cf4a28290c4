-- One contact address belongs to one customer: reminders and key-clear notices go to
-- every contact of an id's customer, so an address on two customers would carry one
-- company's notices to another. The database keeps it so under concurrent adds.
-- A registry that already has an address on two customers stops here: remove it from
-- one of them (DELETE FROM customer_emails WHERE customer_id = '…' AND email = '…')
-- and start again.
CREATE UNIQUE INDEX customer_emails_one_customer ON customer_emails (email);
