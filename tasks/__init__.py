"""Prefect tasks: each does one I/O step or calls the domain core."""
