"""The ``custom_id`` of every component discomfy puts on a message: a versioned codec, pure.

How it works: ``encode(action, job_id, index)`` makes ``dc1:<action>:<job_id>`` or, for a button about one output
of a batch, ``dc1:<action>:<job_id>:<index>`` (``index`` is the output's 0-based position; button labels count
from 1). ``decode`` turns such a string back into a ``ComponentRef``. Everything a button needs is in the
custom_id and the job's row, so buttons keep working forever, across restarts (Discord: persistent components
carry a ``custom_id`` of at most 100 characters; our longest is ~50).

Versioning: ``dc1`` is the format's version. A future format takes ``dc2`` and ``decode`` learns both; messages
already posted keep their ``dc1`` buttons, so ``dc1`` must stay decodable. New actions are new ``ComponentAction``
members (an action this version does not know decodes to ``None``: not ours to handle, e.g. a newer bot's).

Never: raise from ``decode`` (anything not ours or malformed is ``None``), import nextcord, or do I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from discomfy.jobs.state import JobId

__all__ = ["MAX_CUSTOM_ID", "MAX_INDEX", "PREFIX", "ComponentAction", "ComponentRef", "decode", "encode", "is_ours"]

#: Discord: a component's custom_id is at most 100 characters.
MAX_CUSTOM_ID = 100
VERSION = "dc1"
PREFIX = VERSION + ":"
#: A message holds at most 10 attachments, and 25 buttons: an output index beyond this is not one of ours.
MAX_INDEX = 99

# Job ids are UUID4 hex (32 characters); anything made of id-safe characters up to 64 is accepted, so a
# custom_id stays well under 100 characters and ':' can separate the parts.
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_INDEX = re.compile(r"0|[1-9][0-9]?")


class ComponentAction(StrEnum):
    """What a component does; the value is what goes in the custom_id (keep values short and stable)."""

    CANCEL = "cancel"
    UPSCALE = "upscale"
    ANIMATE = "animate"
    REROLL = "reroll"
    EDIT = "edit"
    INFO = "info"
    DELETE = "delete"
    #: "Save preset" on a result's Info answer: a form asking the name (bot/presets.py saves it).
    PRESET = "preset"
    # /workflow add's private summary; the id part is the pending upload's id (workflow_admin.py), not a job's.
    WF_CONFIRM = "wfok"
    WF_ADJUST = "wfadj"
    WF_CANCEL = "wfno"
    WF_PARAM = "wfpar"
    WF_NODE = "wfnod"
    WF_INPUT = "wfinp"
    EXTEND = "extend"


@dataclass(frozen=True, slots=True)
class ComponentRef:
    """A decoded custom_id: which action, on which job, and (for per-output buttons) which output."""

    action: ComponentAction
    job_id: JobId
    index: int | None = None

    def encode(self) -> str:
        return encode(self.action, self.job_id, self.index)


def encode(action: ComponentAction | str, job_id: str, index: int | None = None) -> str:
    """The custom_id for ``action`` on ``job_id`` (and output ``index``). Raises ``ValueError`` on a bad part.

    Raising is right here: the arguments are ours, so a bad one is a bug, not user input.
    """
    action = ComponentAction(action)
    if not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"not a job id usable in a custom_id: {job_id!r}")
    parts = [VERSION, action.value, job_id]
    if index is not None:
        if isinstance(index, bool) or not 0 <= index <= MAX_INDEX:
            raise ValueError(f"output index out of range 0..{MAX_INDEX}: {index!r}")
        parts.append(str(index))
    return ":".join(parts)


def decode(custom_id: object) -> ComponentRef | None:
    """The ``ComponentRef`` in ``custom_id``, or ``None`` for anything not ours or malformed. Never raises."""
    if not isinstance(custom_id, str) or len(custom_id) > MAX_CUSTOM_ID or not custom_id.startswith(PREFIX):
        return None
    parts = custom_id.split(":")
    if len(parts) not in (3, 4):
        return None
    _, raw_action, raw_job, *rest = parts
    try:
        action = ComponentAction(raw_action)
    except ValueError:
        return None
    if not _JOB_ID.fullmatch(raw_job):
        return None
    index: int | None = None
    if rest:
        if not _INDEX.fullmatch(rest[0]):
            return None
        index = int(rest[0])
    return ComponentRef(action, JobId(raw_job), index)


def is_ours(custom_id: object) -> bool:
    """True for a custom_id in our namespace (any version), even one this version cannot decode."""
    return isinstance(custom_id, str) and re.match(r"dc\d+:", custom_id) is not None
