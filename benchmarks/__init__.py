"""Benchmarks: run with `python -m benchmarks.<name>`; each prints figures side by side."""
