"""A2A JSON-RPC messages in the two dialects we speak (1.0 and 0.3), and the task mapping.

Types are a2a-sdk's: the v1.0 protobuf messages (`a2a.types.a2a_pb2`) and, for 0.3, its
pydantic models and converters (`a2a.compat.v0_3`). Only the JSON-RPC envelope of the
1.0 calls ({"jsonrpc", "id", "method", "params"}) is written here.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeVar

from a2a.compat.v0_3 import conversions
from a2a.compat.v0_3 import types as v03
from a2a.helpers import new_data_part, new_text_part
from a2a.types import a2a_pb2 as pb
from a2a.utils.proto_utils import parse_lenient
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from pydantic import BaseModel, ConfigDict, ValidationError

from agent_dispatch.clients.a2a_card import ProtocolVersion
from agent_dispatch.clients.wire import JobExecutionData, summarize_errors
from agent_dispatch.domain.statuses import AgentRunStatus

ModelT = TypeVar("ModelT", v03.Message, v03.Task)

VERSION_HEADER: Final = "A2A-Version"
S = pb.TaskState
RUN_STATUS: Final[Mapping[int, AgentRunStatus]] = {
    S.TASK_STATE_SUBMITTED: AgentRunStatus.WORKING,
    S.TASK_STATE_WORKING: AgentRunStatus.WORKING,
    S.TASK_STATE_COMPLETED: AgentRunStatus.COMPLETED,
    S.TASK_STATE_FAILED: AgentRunStatus.FAILED,
    S.TASK_STATE_REJECTED: AgentRunStatus.FAILED,
    S.TASK_STATE_CANCELED: AgentRunStatus.CANCELLED,
    S.TASK_STATE_INPUT_REQUIRED: AgentRunStatus.FAILED,  # we cannot answer a question
    S.TASK_STATE_AUTH_REQUIRED: AgentRunStatus.FAILED,
}
STATE_NAMES: Final[Mapping[int, str]] = {
    S.TASK_STATE_SUBMITTED: "submitted",
    S.TASK_STATE_WORKING: "working",
    S.TASK_STATE_COMPLETED: "completed",
    S.TASK_STATE_FAILED: "failed",
    S.TASK_STATE_REJECTED: "rejected",
    S.TASK_STATE_CANCELED: "canceled",
    S.TASK_STATE_INPUT_REQUIRED: "input-required",
    S.TASK_STATE_AUTH_REQUIRED: "auth-required",
}


class WireError(ValueError):
    """An answer that does not fit the protocol; the message says why, on one line."""


class RpcError(BaseModel):
    model_config = ConfigDict(extra="ignore")
    code: int
    message: str = ""


class RpcAnswer(BaseModel):
    """A JSON-RPC 2.0 response object (not a batch)."""

    model_config = ConfigDict(extra="ignore")
    jsonrpc: Literal["2.0"]
    id: str | int | None = None
    result: Any = None
    error: RpcError | None = None


def job_request(data: JobExecutionData) -> pb.SendMessageRequest:
    """The job as an A2A message; message and context ids are `<distributionId>:<agentId>`.

    A retried send carries the same ids (the contract's Idempotency-Key), so an agent can
    tell a retry from a new job.
    """
    key = idempotency_key(data)
    text = data.title if not data.description else f"{data.title}\n\n{data.description}"
    message = pb.Message(
        message_id=key,
        context_id=key,
        role=pb.Role.ROLE_USER,
        parts=[new_text_part(text), new_data_part(data.to_wire(), "application/json")],
    )
    ParseDict(
        {"jobId": data.job_id, "distributionId": data.distribution_id, "agentId": data.agent_id},
        message.metadata,
    )
    # Not blocking: the task id comes back at once, so a loser can be cancelled.
    config = pb.SendMessageConfiguration(return_immediately=True)
    return pb.SendMessageRequest(message=message, configuration=config)


def idempotency_key(data: JobExecutionData) -> str:
    return f"{data.distribution_id}:{data.agent_id}"


class Dialect:
    """A2A 1.0 over JSON-RPC: PascalCase methods, ProtoJSON params, `A2A-Version: 1.0`."""

    version: ProtocolVersion = "1.0"
    headers: Mapping[str, str] = {VERSION_HEADER: "1.0"}
    send_method, get_method, cancel_method = "SendMessage", "GetTask", "CancelTask"

    def send_body(self, request: pb.SendMessageRequest, rpc_id: str) -> dict[str, Any]:
        sent = pb.SendMessageRequest()
        sent.CopyFrom(request)
        sent.configuration.history_length = 0  # our own message need not come back
        return _envelope(self.send_method, MessageToDict(sent), rpc_id)

    def get_body(self, task_id: str, rpc_id: str) -> dict[str, Any]:
        params = MessageToDict(pb.GetTaskRequest(id=task_id, history_length=0))
        return _envelope(self.get_method, params, rpc_id)

    def cancel_body(self, task_id: str, rpc_id: str) -> dict[str, Any]:
        return _envelope(
            self.cancel_method, MessageToDict(pb.CancelTaskRequest(id=task_id)), rpc_id
        )

    def send_result(self, result: Any) -> pb.Task | pb.Message:
        answer = pb.SendMessageResponse()
        _parse_into(result, answer)
        if answer.HasField("task"):
            return answer.task
        if answer.HasField("message"):
            return answer.message
        raise WireError("the result has neither a task nor a message")

    def task_result(self, result: Any) -> pb.Task:
        task = pb.Task()
        _parse_into(result, task)
        return task


class Dialect03(Dialect):
    """A2A 0.3 over JSON-RPC: `message/send`, `tasks/get`, `tasks/cancel`, no version header."""

    version: ProtocolVersion = "0.3"
    headers: Mapping[str, str] = {}
    send_method, get_method, cancel_method = "message/send", "tasks/get", "tasks/cancel"

    def send_body(self, request: pb.SendMessageRequest, rpc_id: str) -> dict[str, Any]:
        return _dump(conversions.to_compat_send_message_request(request, rpc_id))

    def get_body(self, task_id: str, rpc_id: str) -> dict[str, Any]:
        return _dump(conversions.to_compat_get_task_request(pb.GetTaskRequest(id=task_id), rpc_id))

    def cancel_body(self, task_id: str, rpc_id: str) -> dict[str, Any]:
        request = pb.CancelTaskRequest(id=task_id)
        return _dump(conversions.to_compat_cancel_task_request(request, rpc_id))

    def send_result(self, result: Any) -> pb.Task | pb.Message:
        if not isinstance(result, dict):
            raise WireError("the result is not an object")
        kind = result.get("kind") or ("message" if "messageId" in result else "task")
        if kind == "message":
            return conversions.to_core_message(_model(result, v03.Message))
        return self.task_result(result)

    def task_result(self, result: Any) -> pb.Task:
        return conversions.to_core_task(_model(result, v03.Task))


DIALECTS: Final[Mapping[ProtocolVersion, Dialect]] = {"1.0": Dialect(), "0.3": Dialect03()}


def _envelope(method: str, params: dict[str, Any], rpc_id: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params}


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _parse_into(result: Any, message: Any) -> None:
    """ProtoJSON `result` into `message`, unknown fields ignored; WireError when it does not fit."""
    if not isinstance(result, dict):
        raise WireError("the result is not an object")
    try:
        parse_lenient(result, message)
    except (ParseError, TypeError, ValueError) as exc:
        raise WireError(f"the result has the wrong shape: {exc}") from None


def _model(result: Any, model: type[ModelT]) -> ModelT:
    try:
        return model.model_validate(result)
    except ValidationError as exc:
        raise WireError(f"the result has the wrong shape: {summarize_errors(exc)}") from None


# Results


def run_status(task: pb.Task) -> AgentRunStatus | None:
    """The agent work state for the task's A2A state; None for a state we do not know."""
    return RUN_STATUS.get(task.status.state)


def state_name(task: pb.Task) -> str:
    return STATE_NAMES.get(task.status.state, f"unknown state {task.status.state}")


def status_text(task: pb.Task) -> str:
    """The text of the task's status message (an agent's reason for failing or asking)."""
    return " ".join(p.text for p in task.status.message.parts if p.HasField("text"))


def task_result(task: pb.Task) -> Any:
    """The artifacts' parts (or, without artifacts, the status message's parts) as JSON."""
    parts = [part for artifact in task.artifacts for part in artifact.parts]
    return parts_result(parts or list(task.status.message.parts))


def parts_result(parts: list[pb.Part]) -> Any:
    """One part: its value; several: a list of values; none: None."""
    values = [part_value(p) for p in parts]
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def part_value(part: pb.Part) -> Any:
    """text -> str; data -> its JSON value; url/raw -> an object naming the file."""
    kind = part.WhichOneof("content")
    if kind == "text":
        return part.text
    if kind == "data":
        return _whole_numbers(MessageToDict(part.data))
    file: dict[str, Any] = {}
    if kind == "url":
        file["url"] = part.url
    elif kind == "raw":
        file["raw"] = base64.b64encode(part.raw).decode("ascii")
    if part.media_type:
        file["mediaType"] = part.media_type
    if part.filename:
        file["filename"] = part.filename
    return file or None


def task_score(task: pb.Task) -> float | None:
    """metadata.score when the agent gives one within 0..1 (as the http-json contract's score)."""
    value = task.metadata.fields.get("score")
    if value is None or value.WhichOneof("kind") != "number_value":
        return None
    score = value.number_value
    return score if 0 <= score <= 1 else None


def _whole_numbers(value: Any) -> Any:
    """protobuf's Value keeps every number as a double: give whole ones back as int."""
    if isinstance(value, float) and value.is_integer() and math.fabs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value
