"""Analytics at scale (B3): a full run and an incremental hourly run over 1M and 10M rows.

    .venv/bin/python -m benchmarks.analytics_scale                  # 1M and 10M rows
    .venv/bin/python -m benchmarks.analytics_scale --rows 200000    # or --quick (100k)

For each size it creates its own database (ad_bench_<random>) on the PostgreSQL server, fills
it server-side with INSERT ... SELECT generate_series (3 agent rows per job, 20 agents, 5
categories, spread over 30 days; secondary indexes are built after the load), then measures,
each in a fresh child process so ru_maxrss is that run's peak alone:

* full — what one analytics run computes over the whole range: hour and day tables for every
  bucket, ranking feedback, window totals and the dashboard. It leaves the watermark a run
  one hour before the newest row would have left.
* incremental — the next hourly run: only the buckets touched since that watermark (the last
  hours and the current day), feedback, the 48-hour dashboard.

It checks that the incremental run left the tables exactly as a full recompute does, prints
one table and drops the database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
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
                  status, attempts, created_at, updated_at, distributed_at, finished_at,
                  dispatch_attempts, first_started_at, first_result_at, calls_started,
                  calls_unstarted, call_spread_ms)
SELECT 'job-' || g, 'q-' || g, 'job ' || g, '', 'cat-' || (g %% %(cats)s), '[]', 1, '{}',
       st, 1, t, t, t, t + (2 + random() * 60) * interval '1 second',
       1, t + interval '1 second',
       CASE WHEN st = 'COMPLETED' THEN t + (1 + random() * 20) * interval '1 second' END,
       least(3, %(rows)s - 3 * (g - 1)), 0, 0
FROM (SELECT g, %(start)s::timestamptz + (g * %(step)s) * interval '1 second' AS t,
             CASE WHEN g %% 100 < 80 THEN 'COMPLETED' WHEN g %% 100 < 90 THEN 'FAILED'
                  WHEN g %% 100 < 95 THEN 'EXPIRED' ELSE 'CANCELLED' END AS st
      FROM generate_series(1, %(jobs)s) g) s
"""
# The facts migration 0010 keeps on the rows by trigger (the load runs without triggers) are
# written here: one attempt per job started a second after intake, its calls all started at
# once (no hedge), the category copied onto the calls. check_facts() compares a sample with
# what the triggers compute.
DISTS_SQL = """
INSERT INTO job_distributions (id, job_id, attempt, status, decisions, started_at,
                               first_result_at, finished_at)
SELECT 'd-' || substr(j.id, 5), j.id, 1, j.status, '[]', j.first_started_at,
       j.first_result_at, j.finished_at
FROM jobs j
"""
CALLS_SQL = """
INSERT INTO job_distribution_agents (id, distribution_id, agent_id, agent_name, rank, status,
                                     attempts, idempotency_key, started_at, finished_at,
                                     latency_ms, failure_kind, won, category)
SELECT 'c-' || k, 'd-' || g, 'agent-' || a, 'agent-' || a, slot + 1, st, 1,
       'd-' || g || ':' || slot, t, t + lat * interval '1 millisecond', lat,
       CASE st WHEN 'CANCELLED' THEN 'cancelled' WHEN 'TIMEOUT' THEN 'timeout'
               WHEN 'FAILED' THEN (ARRAY['http_error', 'invalid_answer', 'connection',
                                         'agent_failed'])[1 + (k %% 4)] END,
       won, 'cat-' || (g %% %(cats)s)
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


# Plain secondary indexes and unique constraints are built once after the load: maintaining
# them row by row costs more than the inserts themselves.
DEFERRED = ("jobs", "job_distributions", "job_distribution_agents")


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
        conn.execute("SET maintenance_work_mem = '512MB'")
        # Bulk load: skip per-row foreign-key triggers (the generated keys are consistent).
        conn.execute("SET session_replication_role = replica")
        rebuild = _drop_secondary(conn)
        for sql in (AGENTS_SQL, JOBS_SQL, DISTS_SQL, CALLS_SQL):
            conn.execute(sql, params)  # type: ignore[arg-type]
        for statement in rebuild:
            conn.execute(statement)  # type: ignore[arg-type]
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - began


def _drop_secondary(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop the non-primary indexes of the execution tables; returns how to rebuild them."""
    rows = conn.execute(
        """SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid),
                  c.conname, pg_get_constraintdef(c.oid), t.relname
           FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
           LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype = 'u'
           WHERE t.relname = ANY(%s) AND NOT i.indisprimary""",
        [list(DEFERRED)],
    ).fetchall()
    rebuild = []
    for index, definition, constraint, condef, table in rows:
        if constraint:
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{constraint}"')  # type: ignore[arg-type]
            rebuild.append(f'ALTER TABLE {table} ADD CONSTRAINT "{constraint}" {condef}')
        else:
            conn.execute(f'DROP INDEX "{index}"')  # type: ignore[arg-type]
            rebuild.append(definition)
    return rebuild


def measure(url: str, mode: str) -> dict[str, Any]:
    """One analytics run in this (child) process: `full` or `incremental` (see the module)."""
    from sqlalchemy import func, select

    from agent_dispatch.db.engine import make_engine, make_session_factory
    from agent_dispatch.db.models import JobDistributionAgent as A
    from agent_dispatch.db.uow import UnitOfWork
    from agent_dispatch.domain.periods import Window, aligned
    from agent_dispatch.reporting import dashboard, incremental
    from agent_dispatch.services import stats
    from agent_dispatch.settings import normalize_database_url

    engine = make_engine(normalize_database_url(url))

    class Transactions:  # all services.stats needs (and no Prefect in the measured process)
        factory = make_session_factory(engine)

        def uow(self) -> UnitOfWork:
            return UnitOfWork(self.factory)

    rt = Transactions()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    steps: dict[str, float] = {}
    began = time.perf_counter()

    def step(name: str, t: float) -> None:
        steps[name] = round(time.perf_counter() - t, 2)

    with engine.connect() as conn:
        low, high = conn.execute(select(func.min(A.finished_at), func.max(A.finished_at))).one()
    now = high + dt.timedelta(seconds=1)
    t = time.perf_counter()
    if mode == "full":
        shown = Window(low, now)
        plan = incremental.explicit(shown)
        # The watermark a run one hour before the newest row would have left behind.
        mark_at = now - dt.timedelta(hours=1)
    else:
        shown = Window(now - incremental.DEFAULT_LOOKBACK, now)
        plan = stats.plan_run(rt, None, now, incremental.SETTLE)
        mark_at = now
    periods, done = stats.aggregate_periods(rt, plan)
    step("aggregate", t)
    t = time.perf_counter()
    written = source = 0
    for part in periods:
        w = stats.write_periods(rt, part, mark_at, incremental_run=True)
        written += w.agent_rows + w.job_rows
        source = max(source, part.source_rows)
    step("write", t)
    t = time.perf_counter()
    stats.write_feedback(rt, stats.feedback_scores(rt, now, dt.timedelta(days=7)))
    step("feedback", t)
    t = time.perf_counter()
    kind = dashboard.granularity(shown)
    shown = aligned(shown, kind)
    overview = stats.window_overview(rt, shown, done)
    html = dashboard.render(overview, *stats.timelines(rt, kind, shown), kind, now)
    step("overview+dashboard", t)
    seconds = time.perf_counter() - began
    _, traced_peak = tracemalloc.get_traced_memory()
    engine.dispose()
    return {
        "mode": mode, "seconds": round(seconds, 2), "steps": steps, "report_rows": written,
        "rows_read": source, "buckets": {k: w.label() for k, w in plan.windows.items()},
        "dashboard_kb": len(html) // 1024,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "baseline_rss_mb": round(baseline / 1024, 1),
        "tracemalloc_peak_mb": round(traced_peak / 2**20, 1),
        "load": os.getloadavg()[0],
    }  # fmt: skip


def report_tables(url: str) -> list[list[tuple[Any, ...]]]:
    """Both report tables, sorted, without ids and write times (to compare two runs)."""
    out = []
    with psycopg.connect(url) as conn:
        for table in ("report_agent_period", "report_job_period"):
            cols = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "AND column_name NOT IN ('id', 'computed_at') ORDER BY ordinal_position",
                [table]).fetchall()]  # fmt: skip
            keys = [c for c in ("period_kind", "period_start", "agent_name", "category")
                    if c in cols]  # fmt: skip
            query = f"SELECT {', '.join(cols)} FROM {table} ORDER BY {', '.join(keys)}"
            out.append(conn.execute(query).fetchall())  # type: ignore[arg-type]
    return out


def differences(a: list[list[tuple[Any, ...]]], b: list[list[tuple[Any, ...]]]) -> list[str]:
    """Rows that differ (floats compared to 1e-9 relative: sums may differ in the last bit
    with the order the rows were added in)."""

    def same(x: Any, y: Any) -> bool:
        if isinstance(x, float) and isinstance(y, float):
            return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
        return bool(x == y)

    out = []
    for rows_a, rows_b in zip(a, b, strict=True):
        if len(rows_a) != len(rows_b):
            out.append(f"{len(rows_a)} rows vs {len(rows_b)}")
            continue
        for ra, rb in zip(rows_a, rows_b, strict=True):
            if not all(same(x, y) for x, y in zip(ra, rb, strict=True)):
                out.append(f"{ra} vs {rb}")
    return out


def check_facts(url: str, jobs: int, sample: int = 2000) -> None:
    """The facts the generator wrote equal what migration 0010's triggers compute: re-fire
    the jobs trigger on a sample of jobs (rolled back) and compare; and the calls' category."""
    ids = sorted({f"job-{1 + i * max(jobs // sample, 1)}" for i in range(min(sample, jobs))})
    facts = ("dispatch_attempts, first_started_at, first_result_at, calls_started, "
             "calls_unstarted, call_spread_ms")  # fmt: skip
    with psycopg.connect(url) as conn:
        query = f"SELECT id, {facts} FROM jobs WHERE id = ANY(%s) ORDER BY id"
        written = conn.execute(query, [ids]).fetchall()  # type: ignore[arg-type]
        conn.execute("UPDATE jobs SET status = status WHERE id = ANY(%s)", [ids])
        computed = conn.execute(query, [ids]).fetchall()  # type: ignore[arg-type]
        wrong_category = conn.execute(
            """SELECT count(*) FROM job_distribution_agents a
               JOIN job_distributions d ON d.id = a.distribution_id JOIN jobs j ON j.id = d.job_id
               WHERE j.id = ANY(%s) AND a.category IS DISTINCT FROM j.category""",
            [ids],
        ).fetchone()
        conn.rollback()
    if written != computed or not written or wrong_category != (0,):
        bad = [(w, c) for w, c in zip(written, computed, strict=True) if w != c][:3]
        raise AssertionError(f"generated facts differ from the triggers': {bad} {wrong_category}")


def child(url: str, mode: str, src: str | None = None) -> dict[str, Any]:
    """One measured run in a fresh process; `src`: run that source tree's code instead (its
    own benchmark module and package, ahead of the installed one on the path)."""
    command = [sys.executable, "-m", "benchmarks.analytics_scale", "--measure", url, "--mode", mode]
    env = {**os.environ, "PYTHONPATH": src} if src else None
    proc = subprocess.run(command, capture_output=True, text=True, check=False, cwd=src, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run_one(
    admin: str, rows: int, days: float, agents: int, cats: int, before: str | None = None
) -> list[dict[str, Any]]:
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
        check_facts(url, -(-rows // 3))
        print(f"  {rows:,} rows generated in {gen:.1f} s", flush=True)
        out: list[dict[str, Any]] = []
        previous = None
        if before:
            # The same database, the code of `before` (it ignores the newer columns).
            print("  before: full run ...", flush=True)
            out.append({**child(url, "full", before), "code": "before"})
            previous = report_tables(url)
            print("  before: incremental run ...", flush=True)
            out.append({**child(url, "incremental", before), "code": "before"})
        print("  full run ...", flush=True)
        full = {**child(url, "full"), "code": "after" if before else ""}
        expected = report_tables(url)
        print("  incremental run ...", flush=True)
        step = {**child(url, "incremental"), "code": full["code"]}
        # The incremental run must leave the tables exactly as the full run computed them
        # (no new rows arrived in between: same data, same numbers); and the new code must
        # compute what the old one did.
        diff = differences(expected, report_tables(url))
        changed = differences(previous, expected) if previous is not None else []
        for r in (*out, full, step):
            r.update(rows=rows, generate_seconds=round(gen, 1), same_as_full=not diff,
                     same_as_before=None if previous is None else not changed)  # fmt: skip
        if diff:
            raise AssertionError(f"the incremental run changed {len(diff)} rows: {diff[:3]}")
        if changed:
            raise AssertionError(f"the tables differ from the before code's: {changed[:3]}")
        return [*out, full, step]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


COLUMNS = (  # title, width, format of each column of the printed table
    ("rows", 12, "{rows:,}"),
    ("code", 6, "{code}"),
    ("run", 12, "{mode}"),
    ("rows read", 11, "{rows_read:,}"),
    ("seconds", 8, "{seconds:.2f}"),
    ("peak RSS MB", 12, "{peak_rss_mb:.1f}"),
    ("after imports MB", 17, "{baseline_rss_mb:.1f}"),
    ("tracemalloc MB", 15, "{tracemalloc_peak_mb:.1f}"),
    ("report rows", 12, "{report_rows:,}"),
    ("load 1 min", 11, "{load:.2f}"),
)


def table(results: list[dict[str, Any]]) -> str:
    head = " ".join(f"{title:>{width}}" for title, width, _ in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in results:
        cells = {"code": "", "load": float("nan"), **r}
        lines.append(" ".join(f"{fmt.format(**cells):>{w}}" for _, w, fmt in COLUMNS))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", default="1000000,10000000", help="comma-separated sizes")
    p.add_argument("--quick", action="store_true", help="one small run (100k rows)")
    p.add_argument("--admin-url", default=ADMIN)
    p.add_argument("--days", type=float, default=30)
    p.add_argument("--agents", type=int, default=20)
    p.add_argument("--categories", type=int, default=5)
    p.add_argument(
        "--before-src",
        metavar="DIR",
        help="also measure the code in DIR (e.g. `git archive main | tar -x -C DIR`) on the\n"
        "same database first, and check both leave the same tables",
    )
    p.add_argument("--measure", help=argparse.SUPPRESS)
    p.add_argument(
        "--mode", default="full", choices=("full", "incremental"), help=argparse.SUPPRESS
    )
    args = p.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.mode)))
        return []
    sizes = [100_000] if args.quick else [int(s.replace("_", "")) for s in args.rows.split(",")]
    results = []
    for rows in sizes:
        print(f"{rows:,} execution rows:", flush=True)
        results += run_one(
            args.admin_url, rows, args.days, args.agents, args.categories, args.before_src
        )
    print("\n" + table(results))
    for r in results:
        print(f"\n{r['rows']:,} rows, {r.get('code') or 'this code'}, {r['mode']}: buckets "
              f"{r['buckets']}; seconds per step {r['steps']}; tables equal to the full run: "
              f"{r['same_as_full']}; to the before code's: {r['same_as_before']}")  # fmt: skip
    print(f"\nload average: {os.getloadavg()}")
    return results


if __name__ == "__main__":
    main()
