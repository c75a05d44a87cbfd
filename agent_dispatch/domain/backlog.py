"""Which waiting jobs no agent can serve whatever happens to capacity and circuits.

A job that fits no agent even with every agent idle and every circuit closed stays
unservable until an agent's row changes: one is added, removed, activated, healed, or given
new categories, tags, skill or protocol. Such a verdict can be recorded with the agent pool's
version and trusted until that version moves (migration 0009 bumps it on exactly those
columns). A job that fits an agent that is merely busy or tripped is different: capacity
frees and circuits half-open with no row change worth a version, so it is planned each run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from agent_dispatch.domain.breaker import CircuitState
from agent_dispatch.domain.matching import exclusion_reason, unserved_by
from agent_dispatch.domain.model import AgentProfile, JobSpec


def _at_rest(agent: AgentProfile) -> AgentProfile:
    """The agent as it would be once its calls end and its circuit closes."""
    return agent._replace(in_flight=0, circuit=CircuitState.CLOSED.value)


def never_servable(job: JobSpec, agents: Iterable[AgentProfile]) -> bool:
    """No agent could take the job even idle with a closed circuit (the matching rules)."""
    return all(exclusion_reason(job, _at_rest(a)) is not None for a in agents)


# A category's judged agents and how many others there are (see matching.unserved_by).
PoolFor = Callable[[str], tuple[Sequence[AgentProfile], int]]


def unservable(jobs: Sequence[tuple[str, JobSpec]], pool_for: PoolFor) -> dict[str, str]:
    """For each (key, job) that never_servable finds, the reason operators see: the same
    summary planning records ("no eligible agent (name: reason; ...)"), as things are now.
    `pool_for(category)`: the agents that can change a verdict (an agent not listing the
    category is excluded by that rule whatever it is), so a fleet is never read whole."""
    # Jobs of one shape share a verdict: a backlog is judged once per shape, not per job.
    by_shape: dict[tuple[str, frozenset[str], int], str | None] = {}
    out = {}
    for key, job in jobs:
        if job.workflow is not None or job.is_step:
            continue  # a workflow's parent is not matched itself; steps are not queue tasks
        shape = (job.category, frozenset(job.tags), job.skill_level)
        if shape not in by_shape:
            pool, outside = pool_for(job.category)
            never = never_servable(job, pool)
            by_shape[shape] = unserved_by(job, pool, outside).summary if never else None
        if (why := by_shape[shape]) is not None:
            out[key] = why
    return out
