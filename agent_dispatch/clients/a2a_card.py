"""Read an A2A Agent Card and reduce it to what dispatch needs (AgentCardInfo).

Parsing (including the v0.3 card layout: `url`, `preferredTransport`,
`additionalInterfaces`, `protocolVersion`) is a2a-sdk's `parse_agent_card`; this module
fetches the card through our own bounded HTTP client (size cap, SSRF guard, deadline,
no redirects) and decides which interface we call.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any, Final, Literal

import httpx
from a2a.client.card_resolver import parse_agent_card
from a2a.types import a2a_pb2 as pb
from google.protobuf.json_format import ParseError

from agent_dispatch.clients.errors import AgentInvalidAnswer
from agent_dispatch.clients.exchange import BoundedHttp, Exchange

ProtocolVersion = Literal["1.0", "0.3"]

# The v1.0 well-known path first, then the one v0.2/v0.3 agents served.
CARD_PATHS: Final = ("/.well-known/agent-card.json", "/.well-known/agent.json")
JSONRPC_BINDING: Final = "JSONRPC"
_MAX_TAG_LENGTH: Final = 100


class AgentCardRefused(AgentInvalidAnswer):
    """The card is malformed or offers nothing this client can call (FailureKind.INVALID_ANSWER)."""


@dataclasses.dataclass(frozen=True, slots=True)
class AgentCardInfo:
    """What dispatch keeps of an Agent Card."""

    name: str
    description: str
    tags: tuple[str, ...]  # the skills' tags, first-seen order, no duplicates
    skill_ids: tuple[str, ...]
    rpc_url: str  # the JSON-RPC endpoint to POST to
    protocol_version: ProtocolVersion  # the A2A version spoken there
    streaming: bool
    push_notifications: bool
    card_url: str  # where the card was read

    @property
    def default_categories(self) -> tuple[str, ...]:
        """Categories when the operator gives none (`--category`): the skill ids."""
        return self.skill_ids


def card_info(raw: Any, card_url: str) -> AgentCardInfo:
    """The card as AgentCardInfo; ValueError with a one-line reason when it is refused."""
    if not isinstance(raw, dict):
        raise ValueError("the card is not a JSON object")
    try:
        card = parse_agent_card(copy.deepcopy(raw))  # it rewrites v0.3 fields in place
    except (ParseError, TypeError, ValueError, AttributeError, KeyError) as exc:
        raise ValueError(f"the card is malformed: {exc}") from None
    name = card.name.strip()
    if not name:
        raise ValueError("the card has no name")
    rpc_url, version = _pick_interface(card, card_url)
    tags: dict[str, None] = {}
    skill_ids: dict[str, None] = {}
    for skill in card.skills:
        if skill.id.strip():
            skill_ids[skill.id.strip()] = None
        for tag in skill.tags:
            tag = tag.strip()
            if 0 < len(tag) <= _MAX_TAG_LENGTH:
                tags[tag] = None
    return AgentCardInfo(
        name=name,
        description=card.description.strip(),
        tags=tuple(tags),
        skill_ids=tuple(skill_ids),
        rpc_url=rpc_url,
        protocol_version=version,
        streaming=card.capabilities.streaming,
        push_notifications=card.capabilities.push_notifications,
        card_url=card_url,
    )


def _pick_interface(card: pb.AgentCard, card_url: str) -> tuple[str, ProtocolVersion]:
    """The JSON-RPC interface to call: A2A 1.0 when offered, else 0.3."""
    offered: list[str] = []
    found: dict[ProtocolVersion, str] = {}
    jsonrpc_versions: list[str] = []
    for iface in card.supported_interfaces:
        binding = iface.protocol_binding.strip().upper() or "?"
        offered.append(binding)
        if binding != JSONRPC_BINDING:
            continue
        version = spoken_version(iface.protocol_version)
        jsonrpc_versions.append(iface.protocol_version or "unset")
        url = _absolute(iface.url, card_url)
        if version is not None and url is not None:
            found.setdefault(version, url)
    for version in ("1.0", "0.3"):
        if version in found:
            return found[version], version
    if not offered:
        raise ValueError("the card lists no interface")
    if not jsonrpc_versions:
        kinds = ", ".join(sorted(set(offered)))
        raise ValueError(f"the card offers no JSON-RPC binding (only {kinds})")
    versions = ", ".join(sorted(set(jsonrpc_versions)))
    raise ValueError(
        f"the card's JSON-RPC binding has no usable URL or speaks A2A {versions}; "
        "this client speaks 1.0 and 0.3"
    )


def spoken_version(declared: str) -> ProtocolVersion | None:
    """'1', '1.0', '1.0.2' -> '1.0'; '', '0.3', '0.3.0' -> '0.3'; anything else None."""
    parts = declared.strip().split(".") if declared.strip() else ["0", "3"]
    if parts[0] == "1" and all(p.isdigit() for p in parts[1:]):
        return "1.0"
    if parts[:2] == ["0", "3"] and all(p.isdigit() for p in parts[2:]):
        return "0.3"
    return None


def _absolute(url: str, card_url: str) -> str | None:
    """An http(s) URL; a relative one is taken relative to the card's URL."""
    try:
        joined = httpx.URL(card_url).join(url.strip())
    except httpx.InvalidURL:
        return None
    if joined.scheme not in ("http", "https") or not joined.host:
        return None
    return str(joined)


def card_urls(base_url: str) -> list[str]:
    """Where to look for the card: the URL itself if it names a .json file, else both paths."""
    base = base_url.rstrip("/")
    if base.endswith(".json"):
        return [base]
    return [base + path for path in CARD_PATHS]


async def read_card(http: BoundedHttp, exchange: Exchange, base_url: str) -> AgentCardInfo:
    """GET the card (agent-card.json, then agent.json on 404) and reduce it.

    Raises AgentCallError kinds: AgentCardRefused, AgentHTTPError, AgentConnectionError,
    AgentTimeout, AgentBlocked (from the address guard).
    """
    urls = card_urls(base_url)
    for i, url in enumerate(urls):
        try:
            answer = await http.request(exchange, "GET", url)
        except httpx.TransportError as exc:
            raise exchange.transport_error(exc) from None
        if answer.status_code == 404 and i + 1 < len(urls):
            continue  # an older agent: try the v0.3 path
        if answer.status_code != 200:
            raise exchange.status_error(answer.status_code, "to its agent card")
        try:
            raw = json.loads(answer.body)
        except ValueError:
            raise AgentCardRefused(f"agent {exchange.agent}: card refused: not JSON") from None
        try:
            return card_info(raw, url)
        except ValueError as exc:
            raise AgentCardRefused(f"agent {exchange.agent}: card refused: {exc}") from None
    raise AssertionError("unreachable")  # the last URL returns or raises
