"""SSRF rules: every non-public address form is refused, public ones pass, only http(s)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from agent_dispatch.clients.errors import AgentBlocked
from agent_dispatch.clients.netguard import check_url, make_address_guard
from agent_dispatch.domain.netpolicy import (
    UnsafeAddress,
    address_problem,
    check_url_shape,
    literal_address,
)

BLOCKED = [
    "http://127.0.0.1/",
    "http://127.1/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://0x7f.0.0.1/",
    "http://0x7f000001/",
    "http://017700000001/",
    "http://0.0.0.0/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/",
    "http://100.64.0.1/",
    "http://[::1]/",
    "http://[::]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[fe80::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:7f00:1::]/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://198.18.0.1/",
    "http://localhost:8080/",
]


@pytest.mark.parametrize("url", BLOCKED)
def test_non_public_addresses_are_refused_in_every_spelling(url: str) -> None:
    with pytest.raises(UnsafeAddress):
        check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://8.8.8.8/",
        "https://1.1.1.1:8443/x",
        "http://[2606:4700:4700::1111]/",
        "http://134744072/",
    ],
)
def test_public_addresses_pass(url: str) -> None:
    check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://8.8.8.8/",
        "gopher://8.8.8.8/",
        "http://user:pw@8.8.8.8/",
        "http:///nohost",
        "8.8.8.8",
    ],
)
def test_only_plain_http_and_https_urls_with_a_host(url: str) -> None:
    with pytest.raises(UnsafeAddress):
        check_url_shape(url)


def test_spellings_decode_to_the_address_inet_aton_would_use() -> None:
    assert literal_address("2130706433") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("0177.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("0x7f.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("10.1") == ipaddress.ip_address("10.0.0.1")
    assert literal_address("example.com") is None
    assert literal_address("1.2.3.4.5") is None


def test_mapped_forms_are_judged_by_the_address_inside() -> None:
    assert address_problem(ipaddress.ip_address("::ffff:169.254.169.254")) == "link-local"
    assert address_problem(ipaddress.ip_address("::ffff:8.8.8.8")) is None


def test_the_call_time_guard_refuses_before_any_request() -> None:
    guard = make_address_guard()
    with pytest.raises(AgentBlocked, match="refused"):
        asyncio.run(guard("http://169.254.169.254/"))  # type: ignore[arg-type]
    asyncio.run(guard("http://8.8.8.8/"))  # type: ignore[arg-type]
