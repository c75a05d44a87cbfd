"""`agent-dispatch jobs list|show|cancel`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from typing import Any

from agent_dispatch.cli.base import CLIError, emit_json, positive_int, runtime, table
from agent_dispatch.cli.workflow_tree import render_tree, steps_of
from agent_dispatch.db.job_repository import spec_of
from agent_dispatch.db.models import Job
from agent_dispatch.db.types import utcnow
from agent_dispatch.domain.statuses import JobStatus
from agent_dispatch.services.cancel import cancel_job
from agent_dispatch.services.dispatch_rules import rules_for
from agent_dispatch.services.finishing import strategy_verdict
from agent_dispatch.services.planning import why_not


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("jobs", help="inspect and cancel jobs")
    jsub = p.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")
    ls = jsub.add_parser("list", help="recent jobs")
    ls.add_argument("--status", type=_status, default=None)
    ls.add_argument("--limit", type=positive_int, default=50)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)
    show = jsub.add_parser("show", help="one job with its agents, timings and match reasons")
    show.add_argument("id", help="job id (or a unique prefix) or queue task id")
    show.add_argument("--json", action="store_true")
    show.add_argument(
        "--why-not",
        metavar="AGENT",
        default=None,
        help="judge this agent (name or id) against the job now, by the matching rules",
    )
    show.set_defaults(handler=cmd_show)
    cancel = jsub.add_parser("cancel", help="cancel a job: agents stopped, queue told")
    cancel.add_argument("id")
    cancel.set_defaults(handler=cmd_cancel)


def _status(text: str) -> JobStatus:
    try:
        return JobStatus(text.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a status ({', '.join(s.value for s in JobStatus)})"
        ) from None


def _ms(a: Any, b: Any) -> float | None:
    return round((b - a).total_seconds() * 1000, 1) if a and b else None


def job_dict(job: Job, detail: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": job.id,
        "queueTaskId": job.queue_task_id,
        "title": job.title,
        "category": job.category,
        "tags": job.tags,
        "skillLevel": job.skill_level,
        "status": job.status,
        "queueStatus": job.queue_status,
        "attempts": job.attempts,
        "selectedAgentId": job.selected_agent_id,
        "error": job.error,
        "matchSummary": job.match_summary,
        "createdAt": job.created_at,
        "finishedAt": job.finished_at,
        "endToEndMs": _ms(job.distributed_at, job.finished_at),
        "workflow": job.workflow,
        "parentJobId": job.parent_job_id,
        "stepId": job.step_id,
    }
    if detail:
        data["payload"] = job.payload
        data["result"] = job.result
        data["expiresAt"] = job.expires_at
        data["resultStrategy"] = job.result_strategy
        strategy = rules_for(runtime().settings, spec_of(job)).strategy if job.category else None
        data["distributions"] = [
            {
                "id": d.id,
                "attempt": d.attempt,
                "status": d.status,
                "flowRunId": d.flow_run_id,
                "startedAt": d.started_at,
                "finishedAt": d.finished_at,
                "timeToFirstResultMs": _ms(d.started_at, d.first_result_at),
                # The strategy re-run over the stored answers, as finishing decided.
                "decided": strategy_verdict(strategy, list(d.agents))[1] if strategy else None,
                "decisions": d.decisions,
                "exclusions": d.exclusions,
                "agents": [
                    {
                        "agent": r.agent_name,
                        "agentId": r.agent_id,
                        "rank": r.rank,
                        "status": r.status,
                        "won": r.won,
                        "attempts": r.attempts,
                        "startedAt": r.started_at,
                        # When the race started it, after the attempt began (a hedge's delay).
                        "startOffsetMs": _ms(d.started_at, r.started_at),
                        "finishedAt": r.finished_at,
                        "latencyMs": r.latency_ms,
                        "score": r.score,
                        "failureKind": r.failure_kind,
                        "error": r.error,
                        "idempotencyKey": r.idempotency_key,
                    }
                    for r in d.agents
                ],
            }
            for d in job.distributions
        ]
    return data


def _part(job: Job) -> str:
    """`workflow NAME` for a workflow's parent, `step ID` for one of its steps."""
    if job.step_id:
        return f"step {job.step_id}"
    return f"workflow {job.workflow}" if job.workflow else "-"


def cmd_list(args: argparse.Namespace) -> int:
    with runtime().uow() as uow:
        jobs = list(uow.jobs.list(args.status, args.limit))
        if args.json:
            emit_json([job_dict(j) for j in jobs])
            return 0
        if not jobs:
            print("no jobs" + (f" in status {args.status.value}" if args.status else ""))
            return 0
        rows = [
            [
                j.id[:8],
                j.queue_task_id,
                j.status,
                j.category,
                _part(j),
                j.title[:40],
                (j.error or j.match_summary or "")[:60],
            ]
            for j in jobs
        ]
        print(table(rows, ["ID", "QUEUE TASK", "STATUS", "CATEGORY", "PART", "TITLE", "NOTE"]))
    return 0


def cmd_why_not(args: argparse.Namespace) -> int:
    with runtime().uow() as uow:
        answer = why_not(uow, args.id, args.why_not, utcnow())
        if answer is None:
            missing = "job" if uow.jobs.find(args.id) is None else "agent"
            raise CLIError(f"no {missing} {args.id if missing == 'job' else args.why_not!r}")
    if args.json:
        emit_json(dataclasses.asdict(answer))
    else:
        print("\n".join(answer.lines()))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    if getattr(args, "why_not", None) is not None:  # callers may build args by hand
        return cmd_why_not(args)
    with runtime().uow() as uow:
        job = uow.jobs.find(args.id)
        if job is None:
            raise CLIError(f"no job {args.id!r}")
        data = job_dict(job, detail=True)
        if job.workflow:
            data["steps"] = steps_of(uow, job)
    if args.json:
        emit_json(data)
        return 0
    print(f"job {data['id']}  (queue task {data['queueTaskId']})")
    print(f"  title     {data['title']}")
    print(
        f"  needs     category {data['category']}, tags {data['tags'] or '-'}, "
        f"skill >= {data['skillLevel']}"
    )
    print(
        f"  status    {data['status']} (queue: {data['queueStatus']}), attempts {data['attempts']}"
    )
    if data["error"]:
        print(f"  error     {data['error']}")
    if data["result"] is not None:
        print(f"  result    {str(data['result'])[:200]}")
    if data["matchSummary"]:
        print(f"  matching  {data['matchSummary']}")
    if data["workflow"]:
        print(
            f"  workflow  {data['workflow']}, {len(data.get('steps', []))} steps, took "
            f"{data['endToEndMs'] or '-'} ms"
        )
        for line in render_tree(data.get("steps", [])):
            print("    " + line)
    if data["stepId"]:
        print(f"  step      {data['stepId']} of job {data['parentJobId']}")
    for d in data["distributions"]:
        print(
            f"\n  attempt {d['attempt']}: {d['status']}, first result after "
            f"{d['timeToFirstResultMs'] or '-'} ms, flow run {d['flowRunId'] or '-'}"
        )
        if d["decided"]:
            print(f"    decided  {d['decided']}")
        rows = [
            [
                r["agent"],
                "-" if r["startOffsetMs"] is None else f"+{r['startOffsetMs']:.0f}",
                r["status"] + (" (winner)" if r["won"] else ""),
                str(r["attempts"]),
                f"{r['latencyMs']:.0f}" if r["latencyMs"] is not None else "-",
                f"{r['score']:.2f}" if r["score"] is not None else "-",
                (r["error"] or "")[:70],
            ]
            for r in d["agents"]
        ]
        print(
            "    "
            + table(rows, ["AGENT", "START MS", "STATUS", "TRIES", "MS", "SCORE", "ERROR"]).replace(
                "\n", "\n    "
            )
        )
        print("    why:")
        for dec in d["decisions"]:
            mark = (
                "chosen  " if dec["chosen"] else "excluded" if not dec["eligible"] else "ranked  "
            )
            print(f"      {mark} {dec['agent_name']}: {dec['reason']}")
        if d["exclusions"]:
            by_rule = sorted(d["exclusions"].items(), key=lambda kv: (-kv[1], kv[0]))
            print("    excluded by rule: " + ", ".join(f"{n} {rule}" for rule, n in by_rule))
        scored = [dec for dec in d["decisions"] if dec["chosen"] and "expected_ms" in dec]
        if scored:
            print("    scores (learned ranking):")
            print("      " + _scores_table(scored, d["agents"]).replace("\n", "\n      "))
    return 0


def _scores_table(decisions: list[dict[str, Any]], agents: list[dict[str, Any]]) -> str:
    """Each chosen agent's score, its 90% interval, exploration, and whether it was called."""
    called = {r["agent"]: r["startedAt"] is not None for r in agents}
    rows = [
        [
            dec["agent_name"],
            str(dec["rank"]),
            f"{dec['score']:.2f}",
            f"[{dec['low']:.2f}, {dec['high']:.2f}]",
            f"{dec['expected_ms'] / 1000:.2f}",
            "yes" if dec["exploration"] else "no",
            "yes" if called.get(dec["agent_name"]) else "no",
        ]
        for dec in decisions
    ]
    head = ["AGENT", "RANK", "SUCCESS", "90% INTERVAL", "EXPECTED S", "EXPLORATION", "CALLED"]
    return table(rows, head)


def cmd_cancel(args: argparse.Namespace) -> int:
    rt = runtime()

    async def cancel() -> str:
        try:
            return (await cancel_job(rt, args.id)).message()
        finally:
            await rt.aclose_clients()  # before asyncio.run closes the loop they belong to

    print(asyncio.run(cancel()))
    return 0
