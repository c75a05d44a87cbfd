"""Chaos blocks 3-5: the agent fault matrix, the SSRF table and the canary-secret search."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
import urllib.request
from typing import Any

import httpx
import psycopg

from agent_dispatch.bootstrap import Runtime
from agent_dispatch.clients.agent import AgentEndpoint
from agent_dispatch.clients.errors import AgentBlocked, AgentConnectionError
from agent_dispatch.clients.netguard import check_url
from agent_dispatch.clients.wire import JobExecutionData
from agent_dispatch.db.models import Job
from agent_dispatch.domain.netpolicy import UnsafeAddress
from agent_dispatch.settings import Settings
from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.queue import SimulatedQueue
from benchmarks.chaos_env import BIN, World

FAULTS = {
    "fast": "fast:delay=0.1",
    "slow": "slow:delay=30",
    "failing": "failing",
    "error500": "error500",
    "non_json": "non_json",
    "wrong_shape": "wrong_shape",
    "hanging": "hanging",
    "async_poll": "async_poll:times=2",
    "rate_limited": "rate_limited:times=2",
    "unavailable_then_ok": "unavailable_then_ok:times=2",
    "drip": "drip:interval=0.05",
    "huge": "huge:size=1073741824",
    "flaky": "flaky:probability=1.0",
    "unhealthy": "unhealthy",
}


def _run_measured(w: World, name: str) -> tuple[int, int, str]:
    """`agent-dispatch run` as a child; its exit code, peak RSS in KiB and its output."""
    env = w.worker_env(DEFAULT_AGENT_TIMEOUT="3000", EXECUTION_RETRY_COUNT="2", WORKER_NAME=name)
    proc = w.spawn([str(BIN / "agent-dispatch"), "run"], name, env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss, (w.workdir / f"{name}.log").read_text(errors="replace")


def _why_not(job: Job) -> str:
    """The matching verdict for the job's own agent (named after its category)."""
    summary = job.match_summary or ""
    start = summary.find(f"{job.category}: ")
    if start < 0:
        return summary[:60]
    part = summary[start:].split(";")[0].rstrip(")")
    return f"not called: {part} (job left OPEN)"


def fault_matrix(w: World) -> dict[str, Any]:
    queue, farm = SimulatedQueue(w.queue_token), AgentFarm()
    for name, spec in FAULTS.items():
        farm.add(name, spec, token=w.agent_token)
    with queue.serve() as q, farm.serve():
        w.queue_url, w.agent_urls = q.url, {n: farm.url_for(n) for n in FAULTS}
        rt = Runtime(Settings(database_url=w.database_url, agent_allow_private_networks=True))
        w.register_agents(rt, {n: {"categories": [n], "max_concurrency": 2} for n in FAULTS})
        for name in FAULTS:
            queue.add_task(title=f"job for {name}", category=name, timeoutMs=3000, maxAgents=1)
        w.cli("health", name="fault-health")
        code, rss_kib, out = _run_measured(w, "fault-run")
        queue.add_task(title="1 GB answer alone", category="huge", timeoutMs=10000)
        huge_code, huge_rss, huge_out = _run_measured(w, "huge-run")
        rows: dict[str, tuple[str, str]] = {}
        with rt.uow() as uow:
            for job in uow.session.query(Job).order_by(Job.created_at):
                agents = [r for d in job.distributions for r in d.agents]
                how = ", ".join(
                    f"{r.status}" + (f" ({r.failure_kind})" if r.failure_kind else "")
                    for r in agents
                ) or _why_not(job)
                rows.setdefault(job.category, (job.status, how))
        rt.dispose()
    crashes = sum(o.count("CRASHED") + o.count("Traceback") for o in (out, huge_out))
    crashes += (code not in (0, 1)) + (huge_code not in (0, 1))
    return {
        "rows": rows,
        "crashes": crashes,
        "rss_mib": rss_kib / 1024,
        "huge_rss_mib": huge_rss / 1024,
        "codes": (code, huge_code),
    }


def print_faults(f: dict[str, Any]) -> None:
    print("\n== 3. agent fault matrix (one job per fault, AGENT_MAX_RESPONSE_BYTES 10 MiB) ==")
    print(f"{'fault':<21}{'job ended':<12}agent call")
    for kind, (status, how) in f["rows"].items():
        print(f"{kind:<21}{status:<12}{how}")
    print(f"crashes                    {f['crashes']} (run exit codes {f['codes']})")
    print(
        f"peak RSS, run refusing a 1 GB answer: {f['huge_rss_mib']:.0f} MiB "
        f"(whole matrix run: {f['rss_mib']:.0f} MiB)"
    )


# (form, URL, the call-time refusal the product owes it): the address guard refuses with
# AgentBlocked; a URL httpx cannot use (not http(s), an unparsable host) never reaches the
# guard and is refused as unusable, without a retry.
BLOCKED, UNUSABLE = "blocked", "blocked: unusable URL"
SSRF_FORMS = [
    ("loopback", "http://127.0.0.1/", BLOCKED),
    ("localhost name", "http://localhost/", BLOCKED),
    ("loopback 127.1 short form", "http://127.1/", BLOCKED),
    ("decimal 2130706433", "http://2130706433/", BLOCKED),
    ("octal 0177.0.0.1", "http://0177.0.0.1/", UNUSABLE),  # httpx cannot parse this host
    ("hex 0x7f.0.0.1", "http://0x7f.0.0.1/", BLOCKED),
    ("hex 0x7f000001", "http://0x7f000001/", BLOCKED),
    ("unspecified 0.0.0.0", "http://0.0.0.0/", BLOCKED),
    ("private 10.0.0.1", "http://10.0.0.1/", BLOCKED),
    ("private 172.16.0.1", "http://172.16.0.1/", BLOCKED),
    ("private 192.168.1.1", "http://192.168.1.1/", BLOCKED),
    ("link-local metadata 169.254.169.254", "http://169.254.169.254/latest/meta-data/", BLOCKED),
    ("decimal metadata 2852039166", "http://2852039166/", BLOCKED),
    ("CGNAT 100.64.0.1", "http://100.64.0.1/", BLOCKED),
    ("IPv6 loopback [::1]", "http://[::1]/", BLOCKED),
    ("IPv6 unspecified [::]", "http://[::]/", BLOCKED),
    ("IPv6 ULA [fc00::1]", "http://[fc00::1]/", BLOCKED),
    ("IPv6 link-local [fe80::1]", "http://[fe80::1]/", BLOCKED),
    ("IPv4-mapped [::ffff:127.0.0.1]", "http://[::ffff:127.0.0.1]/", BLOCKED),
    ("IPv4-mapped [::ffff:169.254.169.254]", "http://[::ffff:a9fe:a9fe]/", BLOCKED),
    ("IPv4-compatible [::127.0.0.1]", "http://[::127.0.0.1]/", BLOCKED),
    ("NAT64 [64:ff9b::a9fe:a9fe]", "http://[64:ff9b::a9fe:a9fe]/", BLOCKED),
    ("6to4 [2002:7f00:1::]", "http://[2002:7f00:1::]/", BLOCKED),
    ("scheme file://", "file:///etc/passwd", UNUSABLE),
    ("scheme ftp://", "ftp://198.51.100.7/", UNUSABLE),
    ("credentials in URL", "http://user:pw@127.0.0.1/", BLOCKED),
]


def _call_verdict(exc: Exception | None) -> str:
    """How one call ended, in the table's words; only the owed refusal is worded as one."""
    if exc is None:
        return "ALLOWED"
    if isinstance(exc, AgentBlocked):
        return BLOCKED
    if isinstance(exc, AgentConnectionError) and "unusable URL" in str(exc):
        return UNUSABLE
    return f"NOT REFUSED: {type(exc).__name__}"


def ssrf_table() -> list[tuple[str, str, str, bool]]:
    """(form, registration verdict, call-time verdict, request reached the network).

    The calls go through the product's own wiring: a Runtime that refuses private networks,
    as deployed, builds the agent client and its guard; only the network is a stand-in that
    records what reaches it.
    """
    reached: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        reached.append(str(request.url))
        return httpx.Response(200, json={"status": "COMPLETED", "result": 1})

    settings = Settings(database_url="sqlite:///:memory:", agent_allow_private_networks=False)
    rt = Runtime(settings, agent_transport=httpx.MockTransport(handler))
    data = JobExecutionData(
        job_id="j",
        distribution_id="d",
        agent_id="a",
        title="t",
        category="c",
        deadline=dt.datetime.now(dt.UTC),
    )

    async def at_call_time(url: str) -> str:
        try:
            await rt.agents().execute(
                AgentEndpoint("a", "a", url), data, deadline=time.monotonic() + 5
            )
        except Exception as exc:
            return _call_verdict(exc)
        finally:
            await rt.aclose_clients()
        return _call_verdict(None)

    out = []
    for form, url, owed in SSRF_FORMS:
        before = len(reached)
        try:
            check_url(url)
            at_registration = "ALLOWED"
        except UnsafeAddress as exc:
            at_registration = f"blocked: {str(exc)[:58]}"
        verdict = asyncio.run(at_call_time(url))
        if verdict != owed and verdict.startswith("blocked"):
            verdict = f"NOT THE OWED REFUSAL: {verdict}"
        out.append((form, at_registration, verdict, len(reached) > before))
    rt.dispose()
    return out


def print_ssrf(rows: list[tuple[str, str, str, bool]]) -> None:
    print("\n== 4. SSRF: agent URLs refused at registration and at call time (runtime wiring) ==")
    print(f"{'address form':<38}{'call time':<34}{'registration'}")
    for form, reg, call, sent in rows:
        print(f"{form:<38}{call + (' SENT' if sent else ''):<34}{reg}")
    # ssrf_table words a call "blocked" only when it ended in the refusal owed to its form.
    blocked = sum(
        1
        for _, reg, call, sent in rows
        if reg.startswith("blocked") and call.startswith("blocked") and not sent
    )
    print(f"blocked at both points     {blocked} of {len(rows)}")


def scan_database(w: World, url: str) -> list[str]:
    """Every row of every table as text, searched for the canaries; returns where found."""
    hits = []
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        for table in tables:
            for (text,) in conn.execute(f'SELECT t::text FROM "{table}" t'):  # type: ignore[arg-type]
                if w.queue_token in text or w.agent_token in text:
                    hits.append(f"database table {table}")
    return hits


def _post(url: str, body: dict[str, Any]) -> bytes:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return bytes(r.read())


def print_canary(w: World, db_hits: list[str]) -> None:
    canaries = (w.queue_token.encode(), w.agent_token.encode())
    hits = list(db_hits)
    searched = 0
    files = [*w.outputs, *sorted(w.prefect_home.rglob("*"))]
    for path in files:
        if path.is_file():
            searched += 1
            data = path.read_bytes()
            hits += [str(path.name) for c in canaries if c in data]
    api = {
        "Prefect logs": ("/logs/filter", {"limit": 200}),
        "Prefect artifacts": ("/artifacts/filter", {"limit": 200}),
        "Prefect events": ("/events/filter", {"limit": 50}),
        "Prefect flow runs": ("/flow_runs/filter", {"limit": 200}),
        "Prefect task runs": ("/task_runs/filter", {"limit": 200}),
    }
    read = {}
    for what, (path, body) in api.items():
        try:
            data = _post(w.prefect_url + path, body)
        except OSError as exc:
            read[what] = f"unreadable ({exc})"
            continue
        read[what] = f"{len(data)} bytes"
        hits += [what for c in canaries if c in data]
    print("\n== 5. canary secrets (REMOTE_QUEUE_TOKEN and AGENT_TOKENS, used by every run) ==")
    print(
        f"searched                   {searched} files (every child's output, the Prefect "
        f"server's home and database), every row of 3 databases, Prefect API reads: "
        + ", ".join(f"{k} {v}" for k, v in read.items())
    )
    print(f"canary found               {len(hits)}" + (f" in {sorted(set(hits))}" if hits else ""))
