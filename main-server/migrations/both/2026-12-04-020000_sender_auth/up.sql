-- Whether the sender of a key-clear request was authenticated by the receiving mail
-- server (its Authentication-Results, as the mail gateway read it): `authenticated`,
-- `not authenticated` or `not checked`, and what that rests on (e.g.
-- `spf=fail, dmarc=fail`). Requests recorded before were not checked.
ALTER TABLE key_clear_requests ADD COLUMN sender_auth TEXT NOT NULL DEFAULT 'not checked';
ALTER TABLE key_clear_requests ADD COLUMN sender_auth_detail TEXT NOT NULL DEFAULT '';
