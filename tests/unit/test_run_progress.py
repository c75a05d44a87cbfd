"""The terminal progress bar of `agent-dispatch run` and the progress watchers behind it."""

from __future__ import annotations

import asyncio
import io
import itertools
import time
import uuid

import pytest

from agent_dispatch.cli.run_cmd import ProgressBar, progress_bar
from agent_dispatch.flows import progress as progress_module
from agent_dispatch.flows.progress import Progress, Snapshot
from agent_dispatch.services.dispatching import JobLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def drive(progress: Progress) -> None:
    progress.add(0)  # no rescued jobs
    progress.add(4)
    await progress.job_done(JobLine(queue_task_id="t1", outcome="COMPLETED"))
    await progress.job_done(JobLine(queue_task_id="t2", outcome="FAILED"))
    await progress.finish()


async def test_bar_on_stderr_when_stdout_is_a_terminal() -> None:
    out, err = Terminal(), io.StringIO()
    with progress_bar(out, err):
        await drive(Progress(artifact_id=None))
    frames = [f for f in err.getvalue().split("\r\x1b[2K") if f]
    assert frames[0] == "[" + "-" * 30 + "] 0/0 jobs done"
    assert frames[2] == "[" + "#" * 8 + "-" * 22 + "] 1/4 jobs done (completed 1)"
    assert frames[-1] == "[" + "#" * 30 + "] 2/4 jobs done (completed 1, failed 1)"
    assert err.getvalue().endswith("\r\x1b[2K")  # the bar is wiped before the summary prints
    assert out.getvalue() == ""


async def test_nothing_extra_when_stdout_is_not_a_terminal() -> None:
    out, err = io.StringIO(), io.StringIO()
    with progress_bar(out, err):
        await drive(Progress(artifact_id=None))
    assert (out.getvalue(), err.getvalue()) == ("", "")


async def test_watchers_end_with_the_context() -> None:
    err = io.StringIO()
    with progress_bar(Terminal(), err):
        pass
    await drive(Progress(artifact_id=None))
    assert err.getvalue() == ""


def test_bar_fits_the_terminal_width() -> None:
    bar = ProgressBar(io.StringIO(), width=40)
    line = bar.render(Snapshot(total=10, done=5, by_outcome={"COMPLETED": 5}))
    assert len(line) <= 39
    assert line.startswith("[#####-----]")


async def test_artifact_updates_at_most_once_an_interval_and_the_last_counts_arrive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[float, str]] = []

    async def update(artifact_id: uuid.UUID, percent: float, description: str) -> None:
        sent.append((time.monotonic(), description))

    monkeypatch.setattr(progress_module, "update_progress_artifact", update)
    monkeypatch.setattr(progress_module, "UPDATE_EVERY_S", 0.2)
    progress = Progress(artifact_id=uuid.uuid4())
    progress.add(40)
    started = time.monotonic()
    for i in range(40):  # 40 job ends over about 0.4 s
        await progress.job_done(JobLine(queue_task_id=f"t{i}", outcome="COMPLETED"))
        await asyncio.sleep(0.01)
    await progress.finish()
    during = [at for at, _ in sent[:-1]]
    assert during[0] - started < 0.05  # the first end shows at once
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(during))
    assert len(during) <= 4  # not one per job
    assert sent[-1][1] == "40/40 jobs done (completed 40)"
