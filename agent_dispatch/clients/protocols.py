"""One face for every agent protocol: each call goes to the client of the endpoint's protocol.

`http-json` is the contract in shared/contracts/agent-http.openapi.yaml (clients/agent.py);
`a2a` is Google's Agent2Agent protocol over JSON-RPC (clients/a2a.py, the optional extra
`agent-dispatch[a2a]`). Both clients have the same execute/cancel/health shape, the same
deadlines, retries, size cap and SSRF guard.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from agent_dispatch.clients.agent import AgentClient, AgentEndpoint, AgentReply, OnAccepted
from agent_dispatch.clients.closing import AsyncClosing
from agent_dispatch.clients.errors import AgentBlocked
from agent_dispatch.clients.wire import HealthReport, JobExecutionData

if TYPE_CHECKING:
    from agent_dispatch.clients.a2a import A2AClient
    from agent_dispatch.clients.a2a_card import AgentCardInfo

HTTP_JSON: Final = "http-json"
A2A: Final = "a2a"
PROTOCOLS: Final = (HTTP_JSON, A2A)


class ProtocolUnavailable(AgentBlocked):
    """The agent speaks a protocol whose client is not installed (refused before calling)."""


class AgentClients(AsyncClosing):
    """Calls agents of any protocol; the A2A client is made on first use (optional extra)."""

    def __init__(self, http_json: AgentClient, make_a2a: Callable[[], A2AClient]) -> None:
        self._http_json = http_json
        self._make_a2a = make_a2a
        self._a2a: A2AClient | None = None

    def a2a(self, agent: str = "agent") -> A2AClient:
        if self._a2a is None:
            try:
                self._a2a = self._make_a2a()
            except ImportError:
                raise ProtocolUnavailable(
                    f"agent {agent} speaks a2a, which needs: pip install 'agent-dispatch[a2a]'"
                ) from None
        return self._a2a

    def _for(self, endpoint: AgentEndpoint) -> AgentClient | A2AClient:
        return self.a2a(endpoint.name) if endpoint.protocol == A2A else self._http_json

    async def execute(
        self,
        endpoint: AgentEndpoint,
        data: JobExecutionData,
        *,
        deadline: float,
        on_accepted: OnAccepted | None = None,
    ) -> AgentReply:
        return await self._for(endpoint).execute(
            endpoint, data, deadline=deadline, on_accepted=on_accepted
        )

    async def cancel(
        self,
        endpoint: AgentEndpoint,
        *,
        job_id: str,
        distribution_id: str,
        remote_task_id: str | None,
        timeout: float = 5.0,  # noqa: ASYNC109 - a budget, enforced by the client
    ) -> bool:
        return await self._for(endpoint).cancel(
            endpoint,
            job_id=job_id,
            distribution_id=distribution_id,
            remote_task_id=remote_task_id,
            timeout=timeout,
        )

    async def health(
        self,
        endpoint: AgentEndpoint,
        *,
        timeout: float = 3.0,  # noqa: ASYNC109 - a budget, enforced by the client
    ) -> HealthReport:
        return await self._for(endpoint).health(endpoint, timeout=timeout)

    async def fetch_card(
        self, base_url: str, *, name: str | None = None, token: str | None = None
    ) -> AgentCardInfo:
        """An A2A agent's card (registration); AgentCallError with one line when refused."""
        return await self.a2a(name or "agent").fetch_card(base_url, name=name, token=token)

    async def aclose(self) -> None:
        await self._http_json.aclose()
        if self._a2a is not None:
            await self._a2a.aclose()
