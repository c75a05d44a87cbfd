"""Analytics at scale: seconds and peak memory of the aggregation over 1M and 10M execution rows.

    .venv/bin/python benchmarks/analytics_scale.py                 # 1M and 10M rows
    .venv/bin/python benchmarks/analytics_scale.py --rows 200000   # or --quick (100k)

For each size it creates its own database (ad_bench_<random>) on the PostgreSQL server, fills
it server-side with INSERT ... SELECT generate_series (3 agent rows per job, 20 agents, 5
categories, spread over 30 days), then runs the whole analytics computation over the full range
in a fresh child process, so ru_maxrss is that run's peak alone, and drops the database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import time
import tracemalloc
import uuid
from typing import Any

import psycopg

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

JOBS_SQL = """
INSERT INTO jobs (id, queue_task_id, title, description, category, tags, skill_level, payload,
                  status, attempts, created_at, updated_at, distributed_at, finished_at)
SELECT 'job-' || g, 'q-' || g, 'job ' || g, '', 'cat-' || (g %% %(cats)s), '[]', 1, '{}',
       CASE WHEN g %% 100 < 80 THEN 'COMPLETED' WHEN g %% 100 < 90 THEN 'FAILED'
            WHEN g %% 100 < 95 THEN 'EXPIRED' ELSE 'CANCELLED' END,
       1, t, t, t, t + (2 + random() * 60) * interval '1 second'
FROM (SELECT g, %(start)s::timestamptz + (g * %(step)s) * interval '1 second' AS t
      FROM generate_series(1, %(jobs)s) g) s
"""
DISTS_SQL = """
INSERT INTO job_distributions (id, job_id, attempt, status, decisions, started_at,
                               first_result_at, finished_at)
SELECT 'd-' || substr(j.id, 5), j.id, 1, j.status, '[]', j.created_at + interval '1 second',
       CASE WHEN j.status = 'COMPLETED'
            THEN j.created_at + (1 + random() * 20) * interval '1 second' END,
       j.finished_at
FROM jobs j
"""
CALLS_SQL = """
INSERT INTO job_distribution_agents (id, distribution_id, agent_id, agent_name, rank, status,
                                     attempts, idempotency_key, started_at, finished_at,
                                     latency_ms, failure_kind, won)
SELECT 'c-' || k, 'd-' || g, 'agent-' || a, 'agent-' || a, slot + 1, st, 1,
       'd-' || g || ':' || slot, t, t + lat * interval '1 millisecond', lat,
       CASE st WHEN 'CANCELLED' THEN 'cancelled' WHEN 'TIMEOUT' THEN 'timeout'
               WHEN 'FAILED' THEN (ARRAY['http_error', 'invalid_answer', 'connection',
                                         'agent_failed'])[1 + (k %% 4)] END,
       won
FROM (
  SELECT k, g, slot, a, lat, t,
         CASE WHEN g %% 100 < 80 AND slot = 0 THEN 'COMPLETED' WHEN r < 0.55 THEN 'CANCELLED'
              WHEN r < 0.75 THEN 'COMPLETED' WHEN r < 0.85 THEN 'TIMEOUT' ELSE 'FAILED' END st,
         (g %% 100 < 80 AND slot = 0) AS won
  FROM (
    SELECT k, k / 3 + 1 AS g, (k %% 3)::int AS slot,
           1 + ((k / 3 + 1) * 7 + (k %% 3) * 3) %% %(agents)s AS a, random() AS r,
           50 + power(random(), 2) * 20000 * (1 + ((k / 3) * 7 + (k %% 3) * 3) %% 5) AS lat,
           %(start)s::timestamptz + ((k / 3 + 1) * %(step)s + 1) * interval '1 second' AS t
    FROM generate_series(0, %(rows)s - 1) k
  ) x
) y
"""
AGENTS_SQL = """
INSERT INTO agents (id, name, url, protocol, categories, tags, skill_level, max_concurrency,
                    active, runs, successes, failures, timeouts, wins, cancelled, reputation,
                    consecutive_failures, created_at, updated_at)
SELECT 'agent-' || i, 'agent-' || i, 'http://127.0.0.1:9/' || i, 'http-json', '["cat-0"]', '[]',
       1, 5, true, 0, 0, 0, 0, 0, 0, 0.5, 0, now(), now()
FROM generate_series(1, %(agents)s) i
"""


def url_of(admin: str, name: str) -> str:
    return admin.rsplit("/", 1)[0] + "/" + name


def generate(url: str, rows: int, days: float, agents: int, cats: int) -> float:
    """Fill a migrated database server-side; returns seconds taken."""
    jobs = -(-rows // 3)
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = end - dt.timedelta(days=days)
    params = {"rows": rows, "jobs": jobs, "agents": agents, "cats": cats, "start": start,
              "step": days * 86400 / jobs}  # fmt: skip
    began = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        # Bulk load: skip per-row foreign-key triggers (the generated keys are consistent).
        conn.execute("SET session_replication_role = replica")
        for sql in (AGENTS_SQL, JOBS_SQL, DISTS_SQL, CALLS_SQL):
            conn.execute(sql, params)  # type: ignore[arg-type]
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - began


def measure(url: str) -> dict[str, Any]:
    """The analytics computation over the whole range (child process: run with --measure)."""
    from sqlalchemy import func, select

    from agent_dispatch.db.engine import make_engine
    from agent_dispatch.db.models import JobDistributionAgent as A
    from agent_dispatch.reporting import compute, dashboard, feedback, store
    from agent_dispatch.reporting.window import KINDS, Window
    from agent_dispatch.settings import normalize_database_url

    engine = make_engine(normalize_database_url(url))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    steps: dict[str, float] = {}
    began = time.perf_counter()

    def step(name: str, t: float) -> None:
        steps[name] = round(time.perf_counter() - t, 2)

    with engine.connect() as conn:
        low, high = conn.execute(select(func.min(A.finished_at), func.max(A.finished_at))).one()
    window = Window(low, high + dt.timedelta(seconds=1))
    now = dt.datetime.now(dt.UTC)
    written = 0
    for kind in KINDS:
        t = time.perf_counter()
        with engine.connect() as conn:
            agents = compute.agent_periods(conn, kind, window)
        step(f"agents/{kind}", t)
        t = time.perf_counter()
        with engine.connect() as conn:
            jobs = compute.job_periods(conn, kind, window)
        step(f"jobs/{kind}", t)
        t = time.perf_counter()
        w = store.replace_periods(engine, kind, window, agents, jobs, now)
        written += w.agent_rows + w.job_rows
        step(f"write/{kind}", t)
    t = time.perf_counter()
    scores = feedback.compute(engine, high, dt.timedelta(days=7))
    feedback.write(engine, scores)
    step("feedback", t)
    t = time.perf_counter()
    kind = dashboard.granularity(window)
    with engine.connect() as conn:
        overview = compute.overview(conn, window)
        timelines = (
            store.read_agent_periods(conn, kind, window),
            store.read_job_periods(conn, kind, window),
        )
    html = dashboard.render(overview, *timelines, kind, now)
    step("overview+dashboard", t)
    seconds = time.perf_counter() - began
    _, traced_peak = tracemalloc.get_traced_memory()
    engine.dispose()
    return {
        "seconds": round(seconds, 2), "steps": steps, "report_rows": written,
        "dashboard_kb": len(html) // 1024,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "baseline_rss_mb": round(baseline / 1024, 1),
        "tracemalloc_peak_mb": round(traced_peak / 2**20, 1),
    }  # fmt: skip


def run_one(admin: str, rows: int, days: float, agents: int, cats: int) -> dict[str, Any]:
    from sqlalchemy import create_engine

    from agent_dispatch.db.migrate import upgrade
    from agent_dispatch.settings import normalize_database_url

    name = f"ad_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = url_of(admin, name)
    try:
        engine = create_engine(normalize_database_url(url))
        upgrade(engine)
        engine.dispose()
        gen = generate(url, rows, days, agents, cats)
        print(f"  {rows:,} rows generated in {gen:.1f} s; aggregating ...", flush=True)
        child = subprocess.run([sys.executable, __file__, "--measure", url],
                               capture_output=True, text=True, check=True)  # fmt: skip
        result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
        result.update(rows=rows, generate_seconds=round(gen, 1))
        return result
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", default="1000000,10000000", help="comma-separated sizes")
    p.add_argument("--quick", action="store_true", help="one small run (100k rows)")
    p.add_argument("--admin-url", default=ADMIN)
    p.add_argument("--days", type=float, default=30)
    p.add_argument("--agents", type=int, default=20)
    p.add_argument("--categories", type=int, default=5)
    p.add_argument("--measure", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    sizes = [100_000] if args.quick else [int(s.replace("_", "")) for s in args.rows.split(",")]
    results = []
    for rows in sizes:
        print(f"{rows:,} execution rows:", flush=True)
        results.append(run_one(args.admin_url, rows, args.days, args.agents, args.categories))
    head = f"{'rows':>12} {'seconds':>8} {'rows/s':>12} {'peak RSS MB':>12} " \
           f"{'baseline MB':>12} {'tracemalloc MB':>15} {'report rows':>12}"  # fmt: skip
    print("\n" + head + "\n" + "-" * len(head))
    for r in results:
        print(f"{r['rows']:>12,} {r['seconds']:>8.1f} {r['rows'] / r['seconds']:>12,.0f} "
              f"{r['peak_rss_mb']:>12.1f} {r['baseline_rss_mb']:>12.1f} "
              f"{r['tracemalloc_peak_mb']:>15.1f} {r['report_rows']:>12,}")  # fmt: skip
    for r in results:
        print(f"\n{r['rows']:,} rows, seconds per step: {r['steps']}")


if __name__ == "__main__":
    main()
