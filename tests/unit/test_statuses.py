"""Job and agent state machines: every pair of statuses is either legal or raises.

The expected tables are written out here by hand (not derived from the product's tables), so a
wrong entry in domain/statuses.py makes a specific parametrized case fail.
"""

from __future__ import annotations

import itertools

import pytest

from agent_dispatch.domain.statuses import (
    AGENT_TERMINAL,
    AGENT_TRANSITIONS,
    JOB_BIRTH,
    JOB_TERMINAL,
    JOB_TRANSITIONS,
    STEP_BIRTH,
    STEP_TRANSITIONS,
    AgentRunStatus,
    FailureKind,
    IllegalTransition,
    JobStatus,
    agent_sources,
    can_move_job,
    check_agent_move,
    check_job_move,
    job_sources,
)

J = JobStatus
A = AgentRunStatus

LEGAL_JOB: frozenset[tuple[JobStatus, JobStatus]] = frozenset(
    {
        (J.OPEN, J.DISTRIBUTED),
        (J.OPEN, J.CANCELLED),
        (J.OPEN, J.EXPIRED),
        (J.DISTRIBUTED, J.IN_PROGRESS),
        (J.DISTRIBUTED, J.FAILED),
        (J.DISTRIBUTED, J.CANCELLED),
        (J.DISTRIBUTED, J.EXPIRED),
        (J.IN_PROGRESS, J.COMPLETED),
        (J.IN_PROGRESS, J.FAILED),
        (J.IN_PROGRESS, J.CANCELLED),
        (J.IN_PROGRESS, J.EXPIRED),
    }
)

LEGAL_AGENT: frozenset[tuple[AgentRunStatus, AgentRunStatus]] = frozenset(
    {
        (A.IDLE, A.ASSIGNED),
        (A.ASSIGNED, A.WORKING),
        (A.ASSIGNED, A.FAILED),
        (A.ASSIGNED, A.CANCELLED),
        (A.ASSIGNED, A.TIMEOUT),
        (A.WORKING, A.COMPLETED),
        (A.WORKING, A.FAILED),
        (A.WORKING, A.CANCELLED),
        (A.WORKING, A.TIMEOUT),
    }
)

ALL_JOB_PAIRS = list(itertools.product(JobStatus, JobStatus))
ALL_AGENT_PAIRS = list(itertools.product(AgentRunStatus, AgentRunStatus))
ILLEGAL_JOB = [p for p in ALL_JOB_PAIRS if p not in LEGAL_JOB]
ILLEGAL_AGENT = [p for p in ALL_AGENT_PAIRS if p not in LEGAL_AGENT]


def _ids(pair: tuple[object, object]) -> str:
    cur, tgt = pair
    return f"{cur}->{tgt}"


def test_the_enumerations_are_the_documented_ones() -> None:
    assert [s.value for s in JobStatus] == [
        "OPEN",
        "DISTRIBUTED",
        "IN_PROGRESS",
        "COMPLETED",
        "CANCELLED",
        "EXPIRED",
        "FAILED",
        "SKIPPED",
    ]
    assert [s.value for s in AgentRunStatus] == [
        "IDLE",
        "ASSIGNED",
        "WORKING",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
    ]
    # The product's tables cover every status, so lookups can never KeyError.
    assert set(JOB_TRANSITIONS) == set(JobStatus)
    assert set(AGENT_TRANSITIONS) == set(AgentRunStatus)
    assert len(ALL_JOB_PAIRS) == 64
    assert len(ALL_AGENT_PAIRS) == 49
    assert len(ILLEGAL_JOB) == 64 - 11
    assert len(ILLEGAL_AGENT) == 49 - 9


# -- jobs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", sorted(LEGAL_JOB), ids=_ids)
def test_legal_job_move_is_accepted(pair: tuple[JobStatus, JobStatus]) -> None:
    current, target = pair
    assert check_job_move(current, target) is target
    # Plain strings (as stored in the database) are accepted too.
    assert check_job_move(current.value, target.value) is target
    assert can_move_job(current, target) is True


@pytest.mark.parametrize("pair", ILLEGAL_JOB, ids=_ids)
def test_illegal_job_move_raises(pair: tuple[JobStatus, JobStatus]) -> None:
    current, target = pair
    with pytest.raises(IllegalTransition) as info:
        check_job_move(current, target)
    err = info.value
    assert err.kind == "job"
    assert err.current == current
    assert err.target == target
    assert str(err) == f"illegal job transition {current.value} -> {target.value}"
    assert can_move_job(current, target) is False
    with pytest.raises(IllegalTransition):
        check_job_move(current.value, target.value)


def test_job_table_matches_exactly() -> None:
    actual = {(s, t) for s, targets in JOB_TRANSITIONS.items() for t in targets}
    assert actual == LEGAL_JOB


def test_job_terminal_statuses_have_no_exits() -> None:
    assert {J.COMPLETED, J.CANCELLED, J.EXPIRED, J.FAILED, J.SKIPPED} == JOB_TERMINAL
    for status in JobStatus:
        assert status.terminal is (status in JOB_TERMINAL)
    for status in JOB_TERMINAL:
        assert JOB_TRANSITIONS[status] == frozenset()
        for target in JobStatus:
            with pytest.raises(IllegalTransition):
                check_job_move(status, target)


def test_no_job_status_moves_to_itself() -> None:
    for status in JobStatus:
        with pytest.raises(IllegalTransition):
            check_job_move(status, status)


def test_a_step_job_may_also_fail_before_any_agent_worked_and_nothing_else_differs() -> None:
    step_table = {(s, t) for s, targets in STEP_TRANSITIONS.items() for t in targets}
    assert step_table == LEGAL_JOB | {(J.OPEN, J.FAILED)}
    assert check_job_move(J.OPEN, J.FAILED, step=True) is J.FAILED
    with pytest.raises(IllegalTransition, match="illegal step transition SKIPPED -> OPEN"):
        check_job_move(J.SKIPPED, J.OPEN, step=True)


def test_skipped_is_a_birth_status_of_steps_only() -> None:
    assert J.SKIPPED in STEP_BIRTH and J.SKIPPED not in JOB_BIRTH
    assert not job_sources(J.SKIPPED)  # nothing moves into SKIPPED: a step is stored so


def test_open_job_cannot_fail_without_agents() -> None:
    with pytest.raises(IllegalTransition, match="OPEN -> FAILED"):
        check_job_move(J.OPEN, J.FAILED)


def test_unknown_job_status_string_is_a_value_error_not_an_illegal_move() -> None:
    for current, target in (("OPEN", "BOGUS"), ("BOGUS", "OPEN")):
        with pytest.raises(ValueError, match="'BOGUS' is not a valid JobStatus") as raised:
            check_job_move(current, target)
        assert not isinstance(raised.value, IllegalTransition)


@pytest.mark.parametrize("target", list(JobStatus), ids=str)
def test_job_sources(target: JobStatus) -> None:
    expected = frozenset(cur for cur, tgt in LEGAL_JOB if tgt is target)
    assert job_sources(target) == expected


def test_job_sources_examples() -> None:
    assert job_sources(J.OPEN) == frozenset()
    assert job_sources(J.DISTRIBUTED) == {J.OPEN}
    assert job_sources(J.IN_PROGRESS) == {J.DISTRIBUTED}
    assert job_sources(J.COMPLETED) == {J.IN_PROGRESS}
    assert job_sources(J.FAILED) == {J.DISTRIBUTED, J.IN_PROGRESS}
    assert job_sources(J.CANCELLED) == {J.OPEN, J.DISTRIBUTED, J.IN_PROGRESS}
    assert job_sources(J.EXPIRED) == {J.OPEN, J.DISTRIBUTED, J.IN_PROGRESS}


# -- agent rows ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", sorted(LEGAL_AGENT), ids=_ids)
def test_legal_agent_move_is_accepted(pair: tuple[AgentRunStatus, AgentRunStatus]) -> None:
    current, target = pair
    assert check_agent_move(current, target) is target
    assert check_agent_move(current.value, target.value) is target


@pytest.mark.parametrize("pair", ILLEGAL_AGENT, ids=_ids)
def test_illegal_agent_move_raises(pair: tuple[AgentRunStatus, AgentRunStatus]) -> None:
    current, target = pair
    with pytest.raises(IllegalTransition) as info:
        check_agent_move(current, target)
    err = info.value
    assert err.kind == "agent"
    assert err.current == current
    assert err.target == target
    assert str(err) == f"illegal agent transition {current.value} -> {target.value}"
    with pytest.raises(IllegalTransition):
        check_agent_move(current.value, target.value)


def test_agent_table_matches_exactly() -> None:
    actual = {(s, t) for s, targets in AGENT_TRANSITIONS.items() for t in targets}
    assert actual == LEGAL_AGENT


def test_agent_terminal_statuses_have_no_exits() -> None:
    assert {A.COMPLETED, A.FAILED, A.CANCELLED, A.TIMEOUT} == AGENT_TERMINAL
    for status in AgentRunStatus:
        assert status.terminal is (status in AGENT_TERMINAL)
    for status in AGENT_TERMINAL:
        assert AGENT_TRANSITIONS[status] == frozenset()
        for target in AgentRunStatus:
            with pytest.raises(IllegalTransition):
                check_agent_move(status, target)


def test_assigned_agent_cannot_complete_without_working() -> None:
    with pytest.raises(IllegalTransition, match="ASSIGNED -> COMPLETED"):
        check_agent_move(A.ASSIGNED, A.COMPLETED)


@pytest.mark.parametrize("target", list(AgentRunStatus), ids=str)
def test_agent_sources(target: AgentRunStatus) -> None:
    expected = frozenset(cur for cur, tgt in LEGAL_AGENT if tgt is target)
    assert agent_sources(target) == expected


def test_agent_sources_examples() -> None:
    assert agent_sources(A.IDLE) == frozenset()
    assert agent_sources(A.ASSIGNED) == {A.IDLE}
    assert agent_sources(A.WORKING) == {A.ASSIGNED}
    assert agent_sources(A.COMPLETED) == {A.WORKING}
    for end in (A.FAILED, A.CANCELLED, A.TIMEOUT):
        assert agent_sources(end) == {A.ASSIGNED, A.WORKING}


def test_illegal_transition_is_a_value_error() -> None:
    assert issubclass(IllegalTransition, ValueError)


@pytest.mark.parametrize(
    ("kind", "counts"),
    [
        (FailureKind.TIMEOUT, True),
        (FailureKind.HTTP_ERROR, True),
        (FailureKind.CONNECTION, True),
        (FailureKind.INVALID_ANSWER, True),
        (FailureKind.AGENT_FAILED, True),
        (FailureKind.BLOCKED, False),
        (FailureKind.CANCELLED, False),
    ],
    ids=str,
)
def test_failure_kind_counts_as_failure(kind: FailureKind, counts: bool) -> None:
    assert kind.counts_as_failure is counts
