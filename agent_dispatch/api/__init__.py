"""The service face of agent-dispatch: HTTP API, live status over WebSocket, live panel."""

from agent_dispatch.api.app import create_app

__all__ = ["create_app"]
