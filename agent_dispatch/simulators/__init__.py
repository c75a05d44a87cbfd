"""Loopback HTTP simulators of the remote queue and of agents, faithful to the contracts."""

from agent_dispatch.simulators.agents import AgentFarm
from agent_dispatch.simulators.behaviours import (
    KINDS,
    Behaviour,
    BehaviourKind,
    behaviour,
    parse_behaviour,
)
from agent_dispatch.simulators.farm_state import CallRecord, CancelRecord
from agent_dispatch.simulators.queue import PatchRecord, RequestRecord, SimulatedQueue
from agent_dispatch.simulators.scenarios import AgentSpec, Scenario, demo_scenario
from agent_dispatch.simulators.server import RunningServer, serve_in_thread

__all__ = [
    "KINDS",
    "AgentFarm",
    "AgentSpec",
    "Behaviour",
    "BehaviourKind",
    "CallRecord",
    "CancelRecord",
    "PatchRecord",
    "RequestRecord",
    "RunningServer",
    "Scenario",
    "SimulatedQueue",
    "behaviour",
    "demo_scenario",
    "parse_behaviour",
    "serve_in_thread",
]
