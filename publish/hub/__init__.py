"""A Hub-compatible HTTP server: the offline default and the test peer."""
