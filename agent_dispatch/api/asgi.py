"""`uvicorn agent_dispatch.api.asgi:app`: the API and panel without the served flows.

Settings come from the environment when the app starts (DATABASE_URL, API_TOKEN, ...)."""

from __future__ import annotations

from agent_dispatch.api.app import create_app
from agent_dispatch.bootstrap import get_runtime
from agent_dispatch.flows.analytics import DEFAULT_REPORT_DIR

app = create_app(get_runtime, report_dir=DEFAULT_REPORT_DIR)
