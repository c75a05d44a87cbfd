"""Resolve agent hosts and refuse non-public addresses, at registration and at call time."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

from agent_dispatch.clients.errors import AgentBlocked
from agent_dispatch.domain.netpolicy import (
    UnsafeAddress,
    address_problem,
    check_url_shape,
    literal_address,
)


def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def check_url(url: str) -> None:
    """Raise UnsafeAddress unless every address the URL's host resolves to is public."""
    host, port = check_url_shape(url)
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise UnsafeAddress(f"cannot resolve {host!r}: {exc}") from None
    if not addresses:
        raise UnsafeAddress(f"{host!r} resolves to no address")
    for ip in addresses:
        problem = address_problem(ip)
        if problem:
            raise UnsafeAddress(f"{host!r} resolves to {problem} address {ip}")


def make_address_guard() -> Callable[[str], Awaitable[None]]:
    """An async guard for AgentClient: resolves off the event loop, raises AgentBlocked."""

    async def guard(url: str) -> None:
        try:
            await asyncio.to_thread(check_url, url)
        except UnsafeAddress as exc:
            raise AgentBlocked(f"agent address refused: {exc}") from None

    return guard
