"""The node engine: pure filesystem work on one host root. Never imports `kubernetes`."""
