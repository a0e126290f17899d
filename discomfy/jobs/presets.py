"""Presets: a member's saved workflow and parameters, kept in one guild and shareable with that guild.

How it works: a preset is a row of the ``presets`` table (schema step 4) in the job store's database, read and
written through the store's one connection and lock (``JobStore.reading`` / ``writing``). ``preset_params`` makes
what is stored from a finished job (pure): the job's recorded parameters without its input pictures, and without
the seed unless asked (a preset is a style to run again, not one picture; ``keep_seed`` keeps it). The prompt is
kept. ``PresetStore`` answers by guild and member only: every method takes the guild, so a preset of one guild is
never seen, used, shared or deleted from another. The rules of names, counts and sizes are checked here, on our
side, inside the write that depends on them (count and uniqueness under the same transaction as the insert):

- a name is 1–32 characters of letters, digits, spaces, ``-``, ``_`` and ``.``, starting with a letter or digit
  (``preset_name``), unique per owner and guild, and unique among the presets shared in a guild (so a name a
  member types names one preset: their own first, else the guild's shared one), case-insensitively;
- a member keeps at most ``limits.max_presets_per_user`` presets per guild;
- the parameters are plain JSON values, at most ``MAX_PARAMS_BYTES`` encoded.

Stored values are not trusted later: a preset is run through ``JobService.check`` against the workflow's manifest
as it is then (the bot does that), and a row this code cannot read is a ``JobStoreError``, as for jobs.

Never: import Discord; return or change a preset of another guild; let a member share, unshare or delete a preset
that is not theirs (an admin's delete of a shared one is the caller's explicit ``as_admin``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiosqlite

from discomfy.errors import BadInputError, PermissionDeniedError, UserError
from discomfy.jobs.schema import Row, job_from_row
from discomfy.jobs.state import GuildId, Job, JobId, JobState, UserId
from discomfy.jobs.store import JobStore, JobStoreError
from discomfy.workflows import ParamType, Workflow

#: The longest preset name (Discord shows autocomplete choices up to 100 characters; ours stay short).
MAX_NAME = 32
#: The stored parameters, JSON-encoded, at most: two prompts at the longest setting (6000) fit with room.
MAX_PARAMS_BYTES = 16_384
#: Presets shown per list in ``/preset list`` and choices in an autocomplete (Discord: at most 25 choices).
MAX_LISTED = 25

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.\-]*")
_COLUMNS = ("id", "guild_id", "owner_id", "name", "workflow", "params", "shared", "source_job", "created_at")


@dataclass(frozen=True)
class Preset:
    id: int
    guild_id: GuildId
    owner_id: UserId
    name: str
    workflow: str
    params: Mapping[str, Any]
    shared: bool
    created_at: float
    source_job: JobId | None = None


def preset_name(text: str) -> str:
    """``text`` as a preset name (spaces around and doubled removed), or a ``BadInputError`` saying the rule."""
    name = " ".join(text.split())
    if not name or len(name) > MAX_NAME or not _NAME.fullmatch(name):
        raise BadInputError(
            f"A preset name is 1 to {MAX_NAME} letters, digits, spaces, '-', '_' or '.', "
            "starting with a letter or digit."
        )
    return name


def can_be_preset(workflow: Workflow) -> bool:
    """A preset runs without pictures: a workflow that needs one each time (upscale, video) cannot be one."""
    return not any(p.type is ParamType.IMAGE and p.required for p in workflow.params.values())


def preset_params(job: Job, workflow: Workflow, *, keep_seed: bool = False) -> dict[str, Any]:
    """What a preset of ``job`` stores: its parameters that ``workflow`` takes, as plain values, without input
    pictures (they belong to that one job) and without the seed unless ``keep_seed``. Refuses a workflow that
    needs a picture (a preset could never run alone) and parameters too large to store."""
    if not can_be_preset(workflow):
        raise BadInputError(
            f"The {workflow.name} workflow needs a picture each time, so it can't be a preset; "
            "presets keep a prompt and settings."
        )
    kept: dict[str, Any] = {}
    for name, value in job.params.items():
        param = workflow.params.get(name)
        if param is None or param.type is ParamType.IMAGE or not isinstance(value, str | int | float | bool):
            continue
        if param.is_seed and not keep_seed:
            continue
        kept[name] = value
    if keep_seed and job.seed is not None and "seed" in workflow.params:
        kept["seed"] = job.seed
    if len(_encoded(kept).encode()) > MAX_PARAMS_BYTES:
        raise BadInputError(
            f"That result's settings are too large to keep as a preset (over {MAX_PARAMS_BYTES} bytes)."
        )
    return kept


def _key(name: str) -> str:
    """A typed name as looked up: spaces around and doubled removed (case is ignored by the column's NOCASE)."""
    return " ".join(name.split())


def shown_name(name: str) -> str:
    """A name for a message: in backticks when it is a valid name (its characters cannot break out of them),
    else "that name" (what someone typed is never echoed unchecked)."""
    key = _key(name)
    return f"`{key}`" if key and len(key) <= MAX_NAME and _NAME.fullmatch(key) else "that name"


def _encoded(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), separators=(",", ":"), sort_keys=True)


def _preset_from_row(row: Row) -> Preset:
    try:
        params = json.loads(row["params"])
        if not isinstance(params, dict):
            raise TypeError("params is not a JSON object")
        return Preset(
            id=int(row["id"]),
            guild_id=GuildId(int(row["guild_id"])),
            owner_id=UserId(int(row["owner_id"])),
            name=str(row["name"]),
            workflow=str(row["workflow"]),
            params=params,
            shared=bool(row["shared"]),
            created_at=float(row["created_at"]),
            source_job=None if row["source_job"] is None else JobId(row["source_job"]),
        )
    except (ValueError, TypeError, IndexError) as exc:
        raise JobStoreError(f"job store: unreadable preset row {row['id']!r}: {exc}") from exc


class PresetStore:
    """The presets of every guild, in the job store's database. Every method is scoped to one guild."""

    def __init__(self, store: JobStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def save(
        self,
        guild_id: int,
        owner_id: int,
        name: str,
        workflow: str,
        params: Mapping[str, Any],
        *,
        most: int,
        source_job: str | None = None,
    ) -> Preset:
        """A new preset of ``owner_id`` in ``guild_id``; refused when the name is taken or ``most`` are kept."""
        name = preset_name(name)
        encoded = _encoded(params)
        if len(encoded.encode()) > MAX_PARAMS_BYTES:
            raise BadInputError(f"Those settings are too large to keep as a preset (over {MAX_PARAMS_BYTES} bytes).")
        async with self.store.writing(f"saving preset {name!r}") as db:
            if await _one(db, "guild_id = ? AND owner_id = ? AND name = ?", (guild_id, owner_id, name)) is not None:
                raise BadInputError(
                    f"You already have a preset called {shown_name(name)} here. "
                    "Pick another name, or delete that one first."
                )
            sql = "SELECT COUNT(*) FROM presets WHERE guild_id = ? AND owner_id = ?"
            async with db.execute(sql, (guild_id, owner_id)) as cursor:
                row = await cursor.fetchone()
            if row is not None and int(row[0]) >= most:
                raise UserError(
                    f"You already keep {most} presets in this server, the most. Delete one with `/preset delete` first."
                )
            marks = ", ".join("?" * (len(_COLUMNS) - 1))
            cursor = await db.execute(
                f"INSERT INTO presets ({', '.join(_COLUMNS[1:])}) VALUES ({marks})",
                (guild_id, owner_id, name, workflow, encoded, 0, source_job, self.clock()),
            )
            preset_id = cursor.lastrowid
            found = await _one(db, "id = ?", (preset_id,))
        assert found is not None  # inserted just above, in the same transaction
        return found

    async def usable(self, guild_id: int, user_id: int, name: str) -> Preset | None:
        """The preset ``name`` means for ``user_id`` in ``guild_id``: their own, else the one shared there."""
        name = _key(name)
        async with self.store.reading("reading a preset") as db:
            mine = await _one(db, "guild_id = ? AND owner_id = ? AND name = ?", (guild_id, user_id, name))
            return mine or await _one(db, "guild_id = ? AND shared = 1 AND name = ?", (guild_id, name))

    async def visible(self, guild_id: int, user_id: int) -> tuple[list[Preset], list[Preset]]:
        """``user_id``'s presets in ``guild_id`` and the ones others shared there, each by name."""
        async with self.store.reading("listing presets") as db:
            mine = await _many(db, "guild_id = ? AND owner_id = ?", (guild_id, user_id))
            shared = await _many(db, "guild_id = ? AND shared = 1 AND owner_id != ?", (guild_id, user_id))
        return mine, shared

    async def matching(self, guild_id: int, user_id: int, typed: str, *, shared: bool) -> list[str]:
        """For an autocomplete: names of ``user_id``'s presets in ``guild_id`` (and, with ``shared``, those shared
        there) containing ``typed`` (any case), at most ``MAX_LISTED``, the member's own first. Filtered in SQL,
        so a guild with many presets still offers the ones that match."""
        if len(_key(typed)) > MAX_NAME:
            return []  # no name is that long
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", _key(typed)) + "%"
        where = "guild_id = ? AND name LIKE ? ESCAPE '\\' AND (owner_id = ?" + (" OR shared = 1)" if shared else ")")
        sql = f"SELECT name FROM presets WHERE {where} ORDER BY owner_id != ?, name, id LIMIT {MAX_LISTED * 2:d}"
        args = (guild_id, pattern, user_id, user_id)
        async with self.store.reading("listing preset names") as db, db.execute(sql, args) as cursor:
            rows = await cursor.fetchall()
        names: list[str] = []
        for row in rows:
            if str(row[0]).lower() not in (n.lower() for n in names):
                names.append(str(row[0]))
        return names[:MAX_LISTED]

    async def set_shared(self, guild_id: int, owner_id: int, name: str, shared: bool) -> Preset:
        """Share (or stop sharing) the owner's own preset ``name`` with ``guild_id``."""
        async with self.store.writing("sharing a preset") as db:
            preset = await _one(db, "guild_id = ? AND owner_id = ? AND name = ?", (guild_id, owner_id, _key(name)))
            if preset is None:
                raise await _not_yours(db, guild_id, name, "share")
            if shared and not preset.shared:
                clash = await _one(db, "guild_id = ? AND shared = 1 AND name = ?", (guild_id, preset.name))
                if clash is not None:
                    raise BadInputError(
                        f"Another member already shares a preset called {shown_name(preset.name)} here. "
                        "Save yours under another name to share it."
                    )
            await db.execute("UPDATE presets SET shared = ? WHERE id = ?", (int(shared), preset.id))
            changed = await _one(db, "id = ?", (preset.id,))
        assert changed is not None
        return changed

    async def delete(self, guild_id: int, user_id: int, name: str, *, as_admin: bool = False) -> Preset:
        """Delete ``user_id``'s own preset ``name`` in ``guild_id``; with ``as_admin`` (the caller checked Manage
        Server), a preset shared there by anyone. Returns what was deleted."""
        async with self.store.writing("deleting a preset") as db:
            preset = await _one(db, "guild_id = ? AND owner_id = ? AND name = ?", (guild_id, user_id, _key(name)))
            if preset is None and as_admin:
                preset = await _one(db, "guild_id = ? AND shared = 1 AND name = ?", (guild_id, _key(name)))
            if preset is None:
                raise await _not_yours(db, guild_id, name, "delete")
            await db.execute("DELETE FROM presets WHERE id = ? AND guild_id = ?", (preset.id, guild_id))
        return preset

    async def latest_result(self, guild_id: int, owner_id: int) -> Job | None:
        """``owner_id``'s latest finished (delivered) job in ``guild_id``: ``/preset save``'s default."""
        sql = (
            "SELECT * FROM jobs WHERE guild_id = ? AND owner_id = ? AND state = ?"
            " ORDER BY COALESCE(finished_at, created_at) DESC, rowid DESC LIMIT 1"
        )
        args = (guild_id, owner_id, str(JobState.DELIVERED))
        async with self.store.reading("finding your latest result") as db, db.execute(sql, args) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        try:
            return job_from_row(row)
        except (ValueError, TypeError, IndexError) as exc:
            raise JobStoreError(f"job store: unreadable row {tuple(row)[:2]!r}: {exc}") from exc


async def _one(db: aiosqlite.Connection, where: str, args: tuple[Any, ...]) -> Preset | None:
    async with db.execute(f"SELECT {', '.join(_COLUMNS)} FROM presets WHERE {where} LIMIT 1", args) as cursor:
        row = await cursor.fetchone()
    return None if row is None else _preset_from_row(row)


async def _many(db: aiosqlite.Connection, where: str, args: tuple[Any, ...]) -> list[Preset]:
    sql = f"SELECT {', '.join(_COLUMNS)} FROM presets WHERE {where} ORDER BY name, id LIMIT {MAX_LISTED + 1:d}"
    async with db.execute(sql, args) as cursor:
        return [_preset_from_row(row) for row in await cursor.fetchall()]


async def _not_yours(db: aiosqlite.Connection, guild_id: int, name: str, doing: str) -> UserError:
    """The refusal for a name that is not one of the member's presets here: someone else's shared one, or none."""
    shown = shown_name(name)
    if await _one(db, "guild_id = ? AND shared = 1 AND name = ?", (guild_id, _key(name))) is not None:
        who = " or a member with Manage Server" if doing == "delete" else ""
        return PermissionDeniedError(
            f"The shared preset {shown} is someone else's; only its owner{who} can {doing} it."
        )
    return UserError(f"You have no preset called {shown} in this server; `/preset list` shows yours.")
