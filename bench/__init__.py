"""Benchmarks of multus-cleanup (issue 6): `python -m bench`, see bench/README.md. Not a test suite."""
