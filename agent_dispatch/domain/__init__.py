"""The domain core: plain Python, no Prefect, httpx or SQLAlchemy."""
