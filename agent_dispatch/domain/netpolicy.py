"""Which agent addresses may be called: only public unicast IPs over http(s) (SSRF guard)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

ALLOWED_SCHEMES = frozenset({"http", "https"})
# Ranges Python's is_global does not flag on every version, or that we refuse explicitly.
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",  # CGNAT
        "169.254.0.0/16",  # link-local, cloud metadata
        "192.0.0.0/24",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "fc00::/7",  # ULA
        "fe80::/10",
        "ff00::/8",
        "64:ff9b::/96",  # NAT64 can reach private IPv4
        "2002::/16",  # 6to4 embeds IPv4
    )
)


class UnsafeAddress(ValueError):
    """An agent URL or address that agent-dispatch refuses to call."""


def unwrap(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IPv4 address hidden in an IPv4-mapped or -compatible IPv6 address, if any."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.packed[:12] == bytes(12) and int(ip) > 1:  # deprecated ::a.b.c.d form
            return ipaddress.IPv4Address(ip.packed[12:])
    return ip


def address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why this resolved address must not be called, or None when it is public."""
    ip = unwrap(ip)
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_private:
        return "private"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return "reserved"
    if any(ip in net for net in _EXTRA_BLOCKED if net.version == ip.version):
        return "non-public"
    if not ip.is_global:
        return "non-public"
    return None


def check_url_shape(url: str) -> tuple[str, int]:
    """Validate scheme and host; return (host, port). Raises UnsafeAddress."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeAddress(f"malformed URL: {exc}") from None
    if parts.scheme not in ALLOWED_SCHEMES:
        raise UnsafeAddress(f"scheme {parts.scheme or '(none)'!r} is not http or https")
    if not parts.hostname:
        raise UnsafeAddress("URL has no host")
    if parts.username or parts.password:
        raise UnsafeAddress("credentials in agent URLs are not allowed; use a token reference")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse a host that is an IP literal, including decimal/octal/hex IPv4 spellings."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    try:
        nums = [
            int(p, 0) if not (p.startswith("0") and p[1:].isdigit()) else int(p, 8) for p in parts
        ]
    except ValueError:
        return None
    # inet_aton rules: the last part fills the remaining bytes (e.g. 127.1, 2130706433).
    *head, last = nums
    if any(not 0 <= n <= 255 for n in head) or last < 0 or last >= 256 ** (4 - len(head)):
        return None
    value = 0
    for n in head:
        value = value * 256 + n
    value = value * 256 ** (4 - len(head)) + last
    return ipaddress.IPv4Address(value)
