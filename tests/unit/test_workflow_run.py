"""The workflow run state machine: what starts, what is skipped, how the run ends."""

from __future__ import annotations

from pathlib import Path

from agent_dispatch.domain.statuses import JobStatus as J
from agent_dispatch.domain.workflow import resolve
from agent_dispatch.domain.workflow_run import StepState, next_moves, step_fields
from agent_dispatch.services.workflow_file import parse

EXAMPLE = (Path(__file__).parents[2] / "docs/examples/write-review-translate.yaml").read_text()
WF, _ = parse(EXAMPLE)
JOB = {"id": "t1", "payload": {"brief": "cats"}}


def started(states: dict[str, StepState]) -> list[str]:
    return [s.step_id for s in next_moves(WF, states, JOB).start]


def test_only_the_root_starts_first_with_its_input_resolved() -> None:
    moves = next_moves(WF, {}, JOB)
    assert [(s.step_id, s.payload) for s in moves.start] == [("draft", {"brief": "cats"})]
    assert moves.ending is None


def test_both_branches_start_together_once_their_need_completes() -> None:
    states = {"draft": StepState(J.COMPLETED, 1, "D")}
    assert started(states) == ["review", "translate"]


def test_a_false_when_skips_the_step_and_the_output_falls_back() -> None:
    states = {
        "draft": StepState(J.COMPLETED, 1, "D"),
        "review": StepState(J.COMPLETED, 1, {"verdict": "ok"}),
        "translate": StepState(J.COMPLETED, 1, "F"),
    }
    moves = next_moves(WF, states, JOB)
    assert [s.step_id for s in moves.skip] == ["fix"]
    assert moves.ending is not None and moves.ending.status is J.COMPLETED
    assert moves.ending.output == {"text": "D", "review": {"verdict": "ok"}, "fr": "F"}


def test_a_true_when_runs_the_fix_and_its_result_wins() -> None:
    states = {
        "draft": StepState(J.COMPLETED, 1, "D"),
        "review": StepState(J.COMPLETED, 1, {"verdict": "changes"}),
        "translate": StepState(J.COMPLETED, 1, "F"),
    }
    assert started(states) == ["fix"]
    states["fix"] = StepState(J.COMPLETED, 1, "D2")
    ending = next_moves(WF, states, JOB).ending
    assert ending is not None and ending.output["text"] == "D2"


def test_continue_lets_the_run_complete_with_a_null_result() -> None:
    states = {
        "draft": StepState(J.COMPLETED, 1, "D"),
        "review": StepState(J.COMPLETED, 1, {"verdict": "ok"}),
        "translate": StepState(J.FAILED, 1, None, "no French today"),
    }
    ending = next_moves(WF, states, JOB).ending
    assert ending is not None and ending.status is J.COMPLETED and ending.output["fr"] is None


def test_a_failed_step_without_continue_fails_the_run_naming_it() -> None:
    states = {"draft": StepState(J.COMPLETED, 1, "D"), "review": StepState(J.FAILED, 1, None, "x")}
    ending = next_moves(WF, states, JOB).ending
    assert ending is not None
    assert (ending.status, ending.step_id, ending.error) == (
        J.FAILED,
        "review",
        "step 'review' failed: x",
    )


def test_retry_starts_the_next_try_until_the_tries_are_spent() -> None:
    wf, _ = parse("name: w\nsteps:\n  - id: a\n    onFailure: retry:2\n")
    assert [
        (s.step_id, s.try_no) for s in next_moves(wf, {"a": StepState(J.FAILED, 1)}, JOB).start
    ] == [("a", 2)]
    assert [s.try_no for s in next_moves(wf, {"a": StepState(J.FAILED, 2)}, JOB).start] == [3]
    ending = next_moves(wf, {"a": StepState(J.FAILED, 3, None, "still")}, JOB).ending
    assert ending is not None and ending.status is J.FAILED


def test_an_expired_step_expires_the_run() -> None:
    states = {"draft": StepState(J.EXPIRED, 1, None, "late")}
    ending = next_moves(WF, states, JOB).ending
    assert ending is not None and ending.status is J.EXPIRED


def test_a_whole_reference_keeps_its_type_and_a_partial_one_becomes_text() -> None:
    ctx = {"steps": {"a": {"result": {"n": 1}}}, "job": {"title": "T"}}
    assert resolve("{{ steps.a.result }}", ctx) == {"n": 1}
    assert resolve("{{steps.a.result.n}}", ctx) == 1
    assert resolve("n={{ steps.a.result }} for {{ job.title }}", ctx) == 'n={"n": 1} for T'
    assert resolve("{{ steps.b.result or job.title }}", ctx) == "T"
    assert resolve(["{{ job.missing }}"], ctx) == [None]


def test_step_fields_come_from_the_step_then_the_task_then_the_defaults() -> None:
    task = {"category": "general", "tags": None, "maxAgents": 3, "timeoutMs": None}
    fields = step_fields(WF, WF.step("review"), task)
    assert fields == {"category": "review", "maxAgents": 3, "timeoutMs": 60000}
