"""The job row and the one table of job state transitions.

How it works: a job's life is a path through ``JobState``; ``TRANSITIONS`` lists, for every state, the states it
may move to, and nothing else in discomfy decides that. ``advance(job, new_state, now=...)`` checks the move
against the table and against what the new state needs, then returns a *new* frozen ``Job`` with its times
stamped; ``amend(job, ...)`` changes the fields that are not about state. The store persists what these return.

    the happy path:   waiting → submitting → queued → running → delivering → delivered
    from               may also go to
    waiting            cancelled, failed
    submitting         submitting (another server), waiting (nothing was sent), running, delivering,
                       cancelled, failed, lost
    queued             submitting (the server forgot it; sent again), delivering, cancelled, failed, lost
    running            submitting (sent again), cancelled, failed, lost
    delivering         failed
    delivered, failed, cancelled, lost: nowhere (terminal)

    waiting     in our own fair queue; no server yet.
    submitting  the row names a server and our prompt_id, written *before* POST /prompt (DESIGN rule 5).
    queued      ComfyUI accepted it and it waits in the server's queue.
    running     ComfyUI is executing it (``execution_start`` / ``executing`` seen).
    delivering  outputs are in hand; being stored and sent to Discord.
    delivered   terminal: the result is on Discord.
    failed      terminal: an error we can name (``failure`` says which kind, ``error`` adds a detail).
    cancelled   terminal: someone pressed Cancel.
    lost        terminal: the server forgot the job, or the bot could not recover it (``failure`` says which).

Rules of this file:
1. An illegal move raises ``IllegalTransitionError`` and changes nothing (a ``Job`` is frozen; callers keep the
   old one). A move to the same state is illegal except ``submitting → submitting`` (sent to another server).
2. Entering ``submitting`` needs ``server_url`` and ``prompt_id`` (and only then may they change, so a queued or
   running job always names its server); entering ``failed`` or ``lost`` needs a ``failure`` kind
   (``outcome.Failure``; ``error`` is an optional detail beside it).
3. Terminal states have no way out. Only ``CANCELLABLE`` states accept ``cancelled``.
4. ``advance`` stamps times: ``submitted_at`` on each entry to submitting, ``started_at`` on running,
   ``finished_at`` on a terminal state. Going back to ``waiting`` forgets the server, prompt_id and times.

Never: read the clock (``now`` is passed in), do I/O, or import asyncio / sqlite.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NewType

from discomfy.errors import DiscomfyError
from discomfy.outcome import Failure

#: Ours: a UUID4 hex string, also the job's ComfyUI websocket clientId.
JobId = NewType("JobId", str)
#: Ours too (a UUID4), chosen before submission so a crash can be resumed by asking ComfyUI about it.
PromptId = NewType("PromptId", str)
UserId = NewType("UserId", int)
GuildId = NewType("GuildId", int)
ChannelId = NewType("ChannelId", int)
MessageId = NewType("MessageId", int)
ApplicationId = NewType("ApplicationId", int)

#: Discord: an interaction token can be used for 15 minutes, then webhook edits fail (401 / code 50027).
INTERACTION_TOKEN_LIFETIME = 15 * 60.0


#: What ``new_job_id`` makes (32 lowercase hex digits): anything else a user types is not one of our jobs.
JOB_ID_SHAPE = re.compile(r"[0-9a-f]{32}")


def new_job_id() -> JobId:
    return JobId(uuid.uuid4().hex)


def new_prompt_id() -> PromptId:
    return PromptId(str(uuid.uuid4()))


class JobKind(StrEnum):
    """What the job makes; the fair queue weighs kinds differently."""

    IMAGE = "image"
    UPSCALE = "upscale"
    VIDEO = "video"


class JobAction(StrEnum):
    """What the user asked for (a command or a button on a result)."""

    GENERATE = "generate"
    UPSCALE = "upscale"
    ANIMATE = "animate"
    REROLL = "reroll"
    EDIT = "edit"
    #: A video continued from its last frame (``parent_id``'s video, output ``source_index``), delivered joined.
    EXTEND = "extend"


class JobState(StrEnum):
    WAITING = "waiting"
    SUBMITTING = "submitting"
    QUEUED = "queued"
    RUNNING = "running"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"


S = JobState
#: The one table of legal moves. Read a row as "from this state, a job may go to these".
TRANSITIONS: Mapping[JobState, frozenset[JobState]] = MappingProxyType(
    {
        S.WAITING: frozenset({S.SUBMITTING, S.CANCELLED, S.FAILED}),
        S.SUBMITTING: frozenset(
            # → submitting: the engine picked another server before this one accepted the prompt.
            # → waiting: nothing reached ComfyUI; back in our own queue.
            # → running / delivering: messages (or the whole job) can come before the POST /prompt reply.
            {S.SUBMITTING, S.WAITING, S.QUEUED, S.RUNNING, S.DELIVERING, S.FAILED, S.CANCELLED, S.LOST}
        ),
        # → submitting: the server restarted and forgot its queue; the engine sends the job again.
        # → delivering: a job can finish before our websocket sees it start (found by reconciling).
        S.QUEUED: frozenset({S.SUBMITTING, S.RUNNING, S.DELIVERING, S.FAILED, S.CANCELLED, S.LOST}),
        S.RUNNING: frozenset({S.SUBMITTING, S.DELIVERING, S.FAILED, S.CANCELLED, S.LOST}),
        # Outputs are in hand: too late to cancel; storing or uploading can still fail (disk full).
        S.DELIVERING: frozenset({S.DELIVERED, S.FAILED}),
        S.DELIVERED: frozenset(),
        S.FAILED: frozenset(),
        S.CANCELLED: frozenset(),
        S.LOST: frozenset(),
    }
)
del S

TERMINAL: frozenset[JobState] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
#: Jobs in these states are reattached on start (and count against the caps).
ACTIVE: frozenset[JobState] = frozenset(JobState) - TERMINAL
#: Cancel is offered (and accepted) only in these.
CANCELLABLE: frozenset[JobState] = frozenset(s for s, nxt in TRANSITIONS.items() if JobState.CANCELLED in nxt)
#: States whose row must name a server and a prompt_id.
AT_SERVER: frozenset[JobState] = frozenset({JobState.SUBMITTING, JobState.QUEUED, JobState.RUNNING})
_NEEDS_FAILURE = frozenset({JobState.FAILED, JobState.LOST})


class IllegalTransitionError(DiscomfyError):
    """A move the state table does not allow, or one missing what the new state needs. Nothing was changed."""

    def __init__(self, job_id: str, current: JobState, requested: JobState, reason: str = "") -> None:
        self.job_id = job_id
        self.current = current
        self.requested = requested
        why = reason or "not allowed by the state table"
        super().__init__(f"job {job_id}: {current} → {requested}: {why}")


@dataclass(frozen=True)
class InteractionRef:
    """The interaction that started a job: while its token lives, the progress message is edited through it."""

    application_id: ApplicationId
    #: A secret for 15 minutes: kept out of repr (and so out of logs).
    token: str = field(repr=False)
    #: UNIX time the interaction was created (from its snowflake, not from when we saw it).
    created_at: float

    @property
    def expires_at(self) -> float:
        return self.created_at + INTERACTION_TOKEN_LIFETIME

    def usable(self, now: float, margin: float = 60.0) -> bool:
        """True while an edit sent now (taking up to ``margin`` seconds) still lands before expiry."""
        return now + margin < self.expires_at


@dataclass(frozen=True)
class Job:
    """One row of the ``jobs`` table. Frozen: a change is a new ``Job`` made by ``advance`` or ``amend``."""

    id: JobId
    owner_id: UserId
    channel_id: ChannelId
    workflow: str
    kind: JobKind
    action: JobAction
    created_at: float
    state: JobState = JobState.WAITING
    guild_id: GuildId | None = None
    #: The progress message, which becomes the result message.
    message_id: MessageId | None = None
    interaction: InteractionRef | None = None
    #: The bound options (prompt, size, steps, …): JSON-compatible values only. Read-only.
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    #: ComfyUI seeds go up to 2**64 - 1.
    seed: int | None = None
    #: For upscale / animate / reroll / edit of a result: that job, and which of its outputs.
    parent_id: JobId | None = None
    source_index: int | None = None
    server_url: str | None = None
    prompt_id: PromptId | None = None
    #: Why a failed or lost job ended (the kind); ``error`` is a detail beside it (ComfyUI's reason, a reference).
    failure: Failure | None = None
    error: str | None = None
    #: For a job started from a button on a result: its progress message is posted as a reply to this message.
    reply_to: MessageId | None = None
    submitted_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.params, MappingProxyType):
            object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def cancellable(self) -> bool:
        return self.state in CANCELLABLE


#: Fields that only ``advance`` may change: the state itself and what the state table stamps or requires.
STATE_FIELDS = frozenset({"state", "server_url", "prompt_id", "submitted_at", "started_at", "finished_at"})
#: Fields nothing may change after the row is created.
FIXED_FIELDS = frozenset({"id", "created_at"})
_FIELDS = frozenset(f.name for f in dataclasses.fields(Job))


def can_transition(current: JobState, new: JobState) -> bool:
    return new in TRANSITIONS[current]


def advance(job: Job, new: JobState, *, now: float, **changes: Any) -> Job:
    """``job`` moved to ``new`` (with ``changes`` applied), or ``IllegalTransitionError`` and nothing changed.

    ``changes`` may name any field except ``id``, ``created_at``, ``state`` and the stamped times.
    """
    if new not in TRANSITIONS[job.state]:
        raise IllegalTransitionError(job.id, job.state, new)
    _check_names(changes, forbidden=FIXED_FIELDS | {"state", "submitted_at", "started_at", "finished_at"})
    if new is not JobState.SUBMITTING and changes.keys() & {"server_url", "prompt_id"}:
        raise IllegalTransitionError(job.id, job.state, new, "server_url and prompt_id change only on submitting")
    stamps: dict[str, Any] = {}
    if new is JobState.WAITING:
        stamps = {"server_url": None, "prompt_id": None, "submitted_at": None, "started_at": None}
    elif new is JobState.SUBMITTING:
        stamps = {"submitted_at": now, "started_at": None}
    elif new is JobState.RUNNING:
        stamps = {"started_at": now}
    elif new in TERMINAL:
        stamps = {"finished_at": now}
    moved = dataclasses.replace(job, state=new, **{**stamps, **changes})
    if new is JobState.SUBMITTING and not (moved.server_url and moved.prompt_id):
        raise IllegalTransitionError(job.id, job.state, new, "a server_url and a prompt_id are needed first")
    if new in _NEEDS_FAILURE and moved.failure is None:
        raise IllegalTransitionError(job.id, job.state, new, "a failure kind is needed")
    return moved


def amend(job: Job, **changes: Any) -> Job:
    """``job`` with fields that are not about state changed (message id, interaction, params, error, …)."""
    _check_names(changes, forbidden=FIXED_FIELDS | STATE_FIELDS)
    return dataclasses.replace(job, **changes)


def _check_names(changes: Mapping[str, Any], forbidden: frozenset[str]) -> None:
    unknown = changes.keys() - _FIELDS
    if unknown:
        raise TypeError(f"Job has no field(s) {', '.join(sorted(unknown))}")
    protected = changes.keys() & forbidden
    if protected:
        raise ValueError(f"{', '.join(sorted(protected))} cannot be set here (see discomfy/jobs/state.py)")
