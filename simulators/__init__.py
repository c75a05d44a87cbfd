"""Loopback HTTP simulators of the remote queue and of agents, faithful to the contracts."""

from simulators.agents import AgentFarm
from simulators.behaviours import KINDS, Behaviour, BehaviourKind, behaviour, parse_behaviour
from simulators.farm_state import CallRecord, CancelRecord
from simulators.queue import PatchRecord, RequestRecord, SimulatedQueue
from simulators.scenarios import AgentSpec, Scenario, demo_scenario
from simulators.server import RunningServer, serve_in_thread

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
