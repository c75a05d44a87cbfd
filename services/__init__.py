"""Plain application services (no Prefect): queue draining, JSON item decoding, storability."""
