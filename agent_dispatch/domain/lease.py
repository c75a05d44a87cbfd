"""Leases with fencing tokens: who may write a taken job, and until when."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid


class LeaseLost(RuntimeError):
    """The job's lease expired or was taken over: this worker must stop writing it."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"lease on job {job_id} was lost; another worker may own it now")
        self.job_id = job_id


@dataclasses.dataclass(frozen=True, slots=True)
class Lease:
    job_id: str
    token: str
    owner: str
    expires_at: dt.datetime

    @staticmethod
    def new(job_id: str, owner: str, now: dt.datetime, seconds: int) -> Lease:
        return Lease(job_id, str(uuid.uuid4()), owner, now + dt.timedelta(seconds=seconds))

    def renewed(self, now: dt.datetime, seconds: int) -> Lease:
        return dataclasses.replace(self, expires_at=now + dt.timedelta(seconds=seconds))
