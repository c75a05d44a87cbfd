"""`agent-dispatch run [--max-jobs N]`: one dispatch flow run."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

from agent_dispatch.cli.base import CLIError, positive_int, runtime
from agent_dispatch.db.migrate import upgrade

if TYPE_CHECKING:  # the flow's modules load Prefect: only `run` itself needs them
    from agent_dispatch.flows.progress import Snapshot


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="one dispatch run: take OPEN queue tasks and finish them")
    p.add_argument("--max-jobs", type=positive_int, default=None)
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.set_defaults(handler=cmd_run)


class ProgressBar:
    """One self-rewriting line on a terminal: `[#####-----] 5/10 jobs done (completed 5)`."""

    def __init__(self, out: TextIO, width: int | None = None) -> None:
        self.out = out
        self.width = width or shutil.get_terminal_size((80, 20)).columns
        self.shown = False

    def render(self, snap: Snapshot) -> str:
        text = snap.describe()
        cells = max(10, min(30, self.width - len(text) - 4))
        filled = round(cells * snap.percent / 100)
        line = f"[{'#' * filled}{'-' * (cells - filled)}] {text}"
        return line[: self.width - 1]

    def __call__(self, snap: Snapshot) -> None:
        self.out.write("\r\x1b[2K" + self.render(snap))
        self.out.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.out.write("\r\x1b[2K")
            self.out.flush()


@contextlib.contextmanager
def progress_bar(stdout: TextIO, stderr: TextIO) -> Iterator[None]:
    """A bar on stderr while the run goes, only when stdout is a terminal (scripts and pipes
    get exactly the output they always had)."""
    if not stdout.isatty():
        yield
        return
    from agent_dispatch.flows.progress import watching

    bar = ProgressBar(stderr)
    try:
        with watching(bar):
            yield
    finally:
        bar.clear()


def cmd_run(args: argparse.Namespace) -> int:
    from agent_dispatch.flows.dispatch import DispatchParams
    from agent_dispatch.prefect_api import prefect_api, run_dispatch
    from agent_dispatch.report import print_summary

    rt = runtime()
    upgrade(rt.engine)  # a no-op when current; saves a 3 a.m. "no such table"
    with prefect_api() as session, progress_bar(sys.stdout, sys.stderr):
        summary = run_dispatch(session, DispatchParams(max_jobs=args.max_jobs))
    if args.json:
        print(summary.model_dump_json(indent=2))
    else:
        print_summary(summary)
    if summary.stopped_reason:
        raise CLIError(summary.stopped_reason)
    return 0
