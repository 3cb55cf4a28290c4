DROP TABLE sync_requests;
DROP TABLE usage_peaks;
DROP TABLE leases;
DROP TABLE licenses;
DROP TABLE sync_state;
DROP TABLE config;
