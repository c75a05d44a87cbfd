"""AgentFarm: many simulated agents of the agent-http contract behind one loopback server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from agent_dispatch.simulators.agent_endpoints import AgentEndpoints
from agent_dispatch.simulators.behaviours import Behaviour, parse_behaviour
from agent_dispatch.simulators.farm_state import AgentState, CallRecord, CancelRecord, FarmState
from agent_dispatch.simulators.server import RunningServer, serve_in_thread


def _chosen(behaviour: Behaviour | str) -> Behaviour:
    return parse_behaviour(behaviour) if isinstance(behaviour, str) else behaviour


class AgentFarm:
    """Agents at /agents/{name}/...; thread-safe: configure and observe while it serves."""

    def __init__(self, agents: Mapping[str, Behaviour | str] | None = None) -> None:
        self._state = FarmState()
        self.app = AgentEndpoints(self._state).app
        self.base_url: str | None = None  # set by serve(); set it when serving `app` otherwise
        for name, behaviour in (agents or {}).items():
            self.add(name, behaviour)

    @contextlib.contextmanager
    def serve(self, port: int = 0) -> Iterator[RunningServer]:
        self._state.stopping.clear()
        try:
            with serve_in_thread(self.app, port, on_stop=self.stop_waiting) as running:
                self.base_url = running.url
                yield running
        finally:
            self.base_url = None
            self._state.stopping.clear()  # the farm can be served again

    def stop_waiting(self) -> None:
        """End every held request (hanging, slow, drip, huge) so the server can stop at once."""
        self._state.stopping.set()

    # Configuration

    def add(
        self, name: str, behaviour: Behaviour | str = "fast", *, token: str | None = None
    ) -> None:
        """Add or replace an agent; a string is a kind with optional params, e.g. "slow:delay=2"."""
        chosen = _chosen(behaviour)
        agent = AgentState(name, chosen, token)
        agent.use(chosen)
        with self._state.lock:
            self._state.agents[name] = agent

    def set_behaviour(self, name: str, behaviour: Behaviour | str) -> None:
        chosen = _chosen(behaviour)
        with self._state.lock:
            self._state.agents[name].use(chosen)

    def require_token(self, name: str, token: str | None) -> None:
        """Answer 401 unless sent "Authorization: Bearer <token>"; None turns the check off."""
        with self._state.lock:
            self._state.agents[name].token = token

    @property
    def names(self) -> list[str]:
        with self._state.lock:
            return list(self._state.agents)

    def url_for(self, name: str) -> str:
        if self.base_url is None:
            raise RuntimeError("the farm is not being served")
        return f"{self.base_url}/agents/{name}"

    # Observation

    @property
    def calls(self) -> list[CallRecord]:
        with self._state.lock:
            return list(self._state.calls)

    @property
    def cancels(self) -> list[CancelRecord]:
        with self._state.lock:
            return list(self._state.cancels)

    def calls_for(self, agent: str) -> list[CallRecord]:
        return [c for c in self.calls if c.agent == agent]

    def executions_for(self, idempotency_key: str) -> int:
        """POST /execute calls that carried this key, however they were answered."""
        return sum(
            1 for c in self.calls if c.path == "/execute" and c.idempotency_key == idempotency_key
        )

    def in_flight(self, agent: str) -> int:
        """Open POST /execute requests to the agent, streamed answers included."""
        with self._state.lock:
            return self._state.agents[agent].in_flight

    def peak_in_flight(self, agent: str) -> int:
        with self._state.lock:
            return self._state.agents[agent].peak

    def streamed_bytes(self, agent: str) -> int:
        """Body bytes the agent's drip and huge answers produced: a bound on what was sent."""
        with self._state.lock:
            return self._state.agents[agent].streamed_bytes

    def summary(self) -> dict[str, Any]:
        """What GET /_sim/calls answers."""
        return self._state.summary()
