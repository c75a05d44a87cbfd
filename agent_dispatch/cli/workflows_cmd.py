"""`agent-dispatch workflows add|list|show|remove|stats`."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from agent_dispatch.cli.base import CLIError, emit_json, runtime, table
from agent_dispatch.services.workflows import (
    WorkflowInvalid,
    WorkflowRefused,
    add_workflow,
    get_workflow,
    list_workflows,
    remove_workflow,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("workflows", help="register and inspect workflows (jobs made of steps)")
    wsub = p.add_subparsers(dest="workflows_command", required=True, metavar="COMMAND")
    add = wsub.add_parser("add", help="check a workflow file and register it")
    add.add_argument("file", type=Path)
    add.add_argument("--replace", action="store_true", help="replace a workflow of that name")
    add.set_defaults(handler=cmd_add)
    ls = wsub.add_parser("list", help="registered workflows")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)
    show = wsub.add_parser("show", help="one workflow: its steps, needs and conditions")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_show)
    rm = wsub.add_parser("remove", help="unregister (refused while runs of it are open)")
    rm.add_argument("name")
    rm.set_defaults(handler=cmd_remove)
    stats = wsub.add_parser("stats", help="per-step success and latency, whole-run durations")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(handler=cmd_stats)


def cmd_add(args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text()
    except OSError as exc:
        raise CLIError(f"cannot read {args.file}: {exc.strerror}") from None
    try:
        wf, created = add_workflow(runtime(), text, replace=args.replace)
    except (WorkflowInvalid, WorkflowRefused) as exc:
        where = f"{args.file}: " if isinstance(exc, WorkflowInvalid) else ""
        raise CLIError(f"{where}{exc}") from None
    verb = "added" if created else "replaced"
    print(f"{verb} workflow {wf.name}: {len(wf.steps)} steps ({' -> '.join(wf.order())})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    views = list_workflows(runtime())
    if args.json:
        emit_json([v.as_dict() for v in views])
        return 0
    if not views:
        print("no workflows; add one with: agent-dispatch workflows add FILE")
        return 0
    rows = [[v.name, str(len(v.steps)), str(v.open_runs), v.description[:60]] for v in views]
    print(table(rows, ["NAME", "STEPS", "OPEN RUNS", "DESCRIPTION"]))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    try:
        view = get_workflow(runtime(), args.name)
    except WorkflowRefused as exc:
        raise CLIError(str(exc)) from None
    if args.json:
        emit_json(view.as_dict(source=True))
        return 0
    wf = view.workflow
    print(f"workflow {wf.name}  ({view.open_runs} open runs)")
    if wf.description:
        print(f"  {wf.description}")
    if wf.defaults:
        print(f"  defaults  {dict(wf.defaults)}")
    rows = []
    for sid in wf.order():
        s = wf.step(sid)
        rows.append(
            [
                sid,
                ", ".join(s.needs) or "-",
                str(s.fields.get("category", "(task's)")),
                str(s.on_failure),
                s.when.describe() if s.when else "",
            ]
        )
    print(table(rows, ["STEP", "NEEDS", "CATEGORY", "ON FAILURE", "WHEN"]))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    try:
        remove_workflow(runtime(), args.name)
    except WorkflowRefused as exc:
        raise CLIError(str(exc)) from None
    print(f"removed workflow {args.name}")
    return 0


def _fmt(value: float | None, unit: str, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def cmd_stats(args: argparse.Namespace) -> int:
    from agent_dispatch.services.stats import workflow_figures

    found = workflow_figures(runtime())
    steps, runs = found.steps, found.runs
    if args.json:
        emit_json(
            {
                "steps": [{**dataclasses.asdict(s), "successRate": s.success_rate} for s in steps],
                "runs": [dataclasses.asdict(r) for r in runs],
            }
        )
        return 0
    if not runs:
        print("no workflow runs yet")
        return 0
    print("runs")
    rows = [
        [
            r.workflow,
            str(r.runs),
            str(r.completed),
            str(r.failed),
            str(r.running),
            str(r.resumed),
            _fmt(r.p50_s, " s", 2),
            _fmt(r.max_s, " s", 2),
        ]
        for r in runs
    ]
    print(table(rows, ["WORKFLOW", "RUNS", "DONE", "FAILED", "RUNNING", "RESUMED", "P50", "MAX"]))
    print("\nsteps")
    rows = [
        [
            s.workflow,
            s.step_id,
            str(s.tries),
            str(s.completed),
            str(s.failed),
            str(s.skipped),
            _fmt(None if s.success_rate is None else s.success_rate * 100, "%"),
            _fmt(s.p50_ms, " ms"),
            _fmt(s.max_ms, " ms"),
        ]
        for s in steps
    ]
    headers = ["WORKFLOW", "STEP", "TRIES", "DONE", "FAILED", "SKIPPED", "SUCCESS", "P50", "MAX"]
    print(table(rows, headers))
    return 0
