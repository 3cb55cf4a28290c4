DROP TABLE usage_reported;
