DROP TABLE sync_history;
