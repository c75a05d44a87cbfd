"""Stand-ins for DNS and the public internet, so SSRF tests dial only loopback servers."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpcore

from agent_dispatch.clients.netguard import IPAddress

# A public address the policy accepts; tests route it to a loopback server, never outward.
PUBLIC = "93.184.216.34"
OTHER_PUBLIC = "93.184.216.35"


class Answers:
    """A resolver answering from a script, one answer per call (the last repeats)."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self._answers = list(answers)
        self.calls: list[tuple[str, int]] = []
        self._lock = threading.Lock()  # it runs in worker threads

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        with self._lock:
            self.calls.append((host, port))
            answer = self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]
        return [ipaddress.ip_address(a) for a in answer]


@dataclasses.dataclass
class Seen:
    """What a loopback server received: requests as (method, path, Host) and TLS names."""

    requests: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    sni: list[str | None] = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def loopback_server(tls: ssl.SSLContext | None = None) -> Iterator[tuple[int, Seen]]:
    """An agent on 127.0.0.1 that answers every request COMPLETED; yields (port, seen)."""
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.requests.append((self.command, self.path, self.headers.get("Host", "")))
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"status": "COMPLETED", "result": "from " + self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        tls.sni_callback = lambda _sock, name, _ctx: seen.sni.append(name)
        # A failed handshake makes accept() raise OSError, which socketserver drops quietly.
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class StandInNetwork(httpcore.AsyncNetworkBackend):
    """Dials `routes` (public IP -> a loopback port) and loopback; other IPs fail.

    Loopback, and a host name (which only an unpinned connection would pass), are dialled
    for real, so a guard that lets a private address through really reaches the private
    test server; `dialled` records every host asked for.
    """

    def __init__(self, routes: dict[str, int] | None = None) -> None:
        self.routes = routes or {}
        self.dialled: list[tuple[str, int]] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.dialled.append((host, port))
        if host in self.routes:
            host, port = "127.0.0.1", self.routes[host]
        elif not _loopback_or_name(host):
            raise httpcore.ConnectError(f"{host} is not on the test network")
        return await self._real.connect_tcp(host, port, timeout=timeout)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise NotImplementedError

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


def _loopback_or_name(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True
