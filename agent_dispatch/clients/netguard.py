"""SSRF guard: resolve an agent's host once, refuse non-public addresses, dial only those.

Checking a name and then letting httpx resolve it again to connect is not a guard: a hostile
DNS server can answer a public address to the check and 127.0.0.1 to the connection (DNS
rebinding). So the connection itself goes through `PinnedBackend`, which resolves, checks
every address, and dials the checked IP. TLS starts afterwards in httpcore with the original
host name as `server_hostname`, so SNI and certificate checks still use the name; the Host
header comes from the URL and is untouched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence

import anyio.to_thread
import httpcore
import httpx

from agent_dispatch.clients.errors import AgentBlocked
from agent_dispatch.domain.netpolicy import (
    UnsafeAddress,
    address_problem,
    check_url_shape,
    literal_address,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> addresses; blocking (it runs in a worker thread). Tests inject their own.
Resolver = Callable[[str, int], Sequence[IPAddress]]


def resolve(host: str, port: int) -> list[IPAddress]:
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def checked_addresses(host: str, port: int, resolver: Resolver = resolve) -> list[IPAddress]:
    """One resolution of `host`, every address public; raises UnsafeAddress otherwise."""
    try:
        addresses = list(dict.fromkeys(resolver(host, port)))  # unique, in the resolver's order
    except (OSError, UnicodeError) as exc:
        raise UnsafeAddress(f"cannot resolve {host!r}: {exc}") from None
    if not addresses:
        raise UnsafeAddress(f"{host!r} resolves to no address")
    for ip in addresses:
        problem = address_problem(ip)
        if problem:
            raise UnsafeAddress(f"{host!r} resolves to {problem} address {ip}")
    return addresses


def check_url(url: str, resolver: Resolver = resolve) -> None:
    """Raise UnsafeAddress unless every address the URL's host resolves to is public."""
    host, port = check_url_shape(url)
    checked_addresses(host, port, resolver)


def _refused(exc: UnsafeAddress) -> AgentBlocked:
    return AgentBlocked(f"agent address refused: {exc}")


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer for agent calls: every connection goes to a checked address."""

    def __init__(
        self, resolver: Resolver = resolve, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await anyio.to_thread.run_sync(
                checked_addresses, host, port, self._resolver
            )
        except UnsafeAddress as exc:
            # Not an httpcore error, so httpx passes it through unmapped: the caller sees a
            # refusal (FailureKind.BLOCKED), never a connection error it would retry.
            raise _refused(exc) from None
        failure: Exception | None = None
        for ip in addresses:  # as a resolving connect would: the next address if one fails
            try:
                return await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # checked_addresses never returns an empty list
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AgentBlocked("agent address refused: unix sockets are not agent addresses")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, its connection pool built on a PinnedBackend."""

    def __init__(
        self,
        backend: PinnedBackend,
        *,
        limits: httpx.Limits,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # httpx 0.28 takes no network backend, so the pool it just built is replaced by the
        # same pool on ours (no proxy, http/1.1, as above). tests/unit/test_netguard_pinning.py
        # fails if a newer httpx stops routing connections through `_pool`.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class NetGuard:
    """The SSRF guard of agent calls: an early refusal plus the pin on every connection."""

    resolver: Resolver = resolve
    # Where checked addresses are dialled; None is httpcore's default. Tests stand in here.
    inner: httpcore.AsyncNetworkBackend | None = None

    async def check(self, url: str) -> None:
        """Refuse a bad URL before any connection (an AddressGuard); raises AgentBlocked.

        This only saves a connection attempt: the name is resolved again when connecting,
        and that resolution, checked by the transport, is what gets dialled.
        """
        try:
            await asyncio.to_thread(check_url, url, self.resolver)
        except UnsafeAddress as exc:
            raise _refused(exc) from None

    def transport(
        self, *, limits: httpx.Limits, verify: ssl.SSLContext | bool = True
    ) -> PinnedTransport:
        return PinnedTransport(
            PinnedBackend(self.resolver, self.inner), limits=limits, verify=verify
        )


def make_address_guard(resolver: Resolver = resolve) -> Callable[[str], Awaitable[None]]:
    """The early check alone, for callers that bring their own transport."""
    return NetGuard(resolver).check
