"""Small builders of job rows for the jobs tests."""

from __future__ import annotations

from typing import Any

from discomfy.jobs.state import ChannelId, Job, JobAction, JobId, JobKind, UserId

T0 = 1_700_000_000.0


def make_job(
    number: int = 1,
    *,
    owner: int = 10,
    kind: JobKind = JobKind.IMAGE,
    created_at: float = T0,
    **fields: Any,
) -> Job:
    return Job(
        id=JobId(f"{number:032x}"),
        owner_id=UserId(owner),
        channel_id=ChannelId(500),
        workflow="txt2img",
        kind=kind,
        action=JobAction.GENERATE,
        created_at=created_at,
        **fields,
    )
