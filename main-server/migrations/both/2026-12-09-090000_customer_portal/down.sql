DROP TABLE portal_link_requests;
DROP TABLE portal_sessions;
DROP TABLE portal_links;
