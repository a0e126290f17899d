"""The preset store and its rules (``jobs/presets.py``): names, counts, sizes, guild scoping, sharing, deleting,
what a preset keeps of a job, and the schema step that adds the table to an existing database."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from discomfy.errors import BadInputError, PermissionDeniedError, UserError
from discomfy.jobs.presets import MAX_PARAMS_BYTES, PresetStore, preset_name, preset_params, shown_name
from discomfy.jobs.schema import JOB_COLUMNS, SCHEMA_VERSION, job_values
from discomfy.jobs.state import GuildId, JobState
from discomfy.jobs.store import JobStore, JobStoreError, migrate
from discomfy.workflows import Kind, Param, ParamType, Target, Workflow
from tests.jobs.factories import T0, make_job

GUILD, OTHER_GUILD = 1000, 2000
BOB, CAROL = 10, 20
PARAMS = {"prompt": "a fox", "steps": 4, "cfg": 6.5}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "discomfy.sqlite3"


@pytest.fixture
async def presets(db_path: Path) -> AsyncIterator[PresetStore]:
    async with JobStore(db_path) as store:
        yield PresetStore(store, clock=lambda: T0)


async def save(presets: PresetStore, name: str = "fox", *, guild: int = GUILD, owner: int = BOB, most: int = 5) -> Any:
    return await presets.save(guild, owner, name, "txt2img", PARAMS, most=most)


# --- names -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fox", "Snow Fox 2", "a.b-c_d", "x" * 32, "  spaced   out  "])
def test_a_good_name_is_kept_with_its_spaces_tidied(name: str) -> None:
    assert preset_name(name) == " ".join(name.split())


@pytest.mark.parametrize("name", ["", "   ", "x" * 33, "-dash", "**bold**", "<@123>", "@everyone", "a/b", "../x", "é"])
def test_a_bad_name_is_refused_with_the_rule(name: str) -> None:
    with pytest.raises(BadInputError, match="letters, digits, spaces"):
        preset_name(name)


def test_a_name_is_shown_in_backticks_only_when_valid() -> None:
    assert shown_name("fox") == "`fox`"
    assert shown_name("`x` @everyone") == "that name"


# --- what a preset keeps -----------------------------------------------------------------------------------


def workflow(*params: Param) -> Workflow:
    return Workflow("txt2img", Kind.IMAGE, {}, {p.name: p for p in params}, ("9",))


def param(name: str, kind: ParamType = ParamType.INT, *, required: bool = False) -> Param:
    return Param(name, kind, (Target("1", name),), required=required)


TXT2IMG = workflow(param("prompt", ParamType.STR), param("seed"), param("steps"), param("image", ParamType.IMAGE))


def test_a_preset_keeps_the_prompt_and_settings_but_not_the_seed_or_pictures() -> None:
    job = make_job(params={"prompt": "a fox", "seed": 5, "steps": 4, "image": "discomfy/abc.png", "gone": 1}, seed=5)
    assert preset_params(job, TXT2IMG) == {"prompt": "a fox", "steps": 4}


def test_a_preset_keeps_the_seed_when_asked() -> None:
    job = make_job(params={"prompt": "a fox", "seed": 5, "steps": 4}, seed=5)
    assert preset_params(job, TXT2IMG, keep_seed=True) == {"prompt": "a fox", "seed": 5, "steps": 4}


def test_a_workflow_that_needs_a_picture_cannot_be_a_preset() -> None:
    upscale = workflow(param("image", ParamType.IMAGE, required=True), param("scale"))
    with pytest.raises(BadInputError, match="needs a picture"):
        preset_params(make_job(params={"scale": 2}), upscale)


def test_settings_too_large_are_refused() -> None:
    job = make_job(params={"prompt": "x" * (MAX_PARAMS_BYTES + 1)})
    with pytest.raises(BadInputError, match="too large"):
        preset_params(job, TXT2IMG)


async def test_the_store_refuses_parameters_too_large(presets: PresetStore) -> None:
    with pytest.raises(BadInputError, match="too large"):
        await presets.save(GUILD, BOB, "big", "txt2img", {"prompt": "x" * MAX_PARAMS_BYTES}, most=5)


# --- saving and finding ------------------------------------------------------------------------------------


async def test_a_saved_preset_is_found_by_its_owner_in_its_guild_only(presets: PresetStore) -> None:
    saved = await save(presets, "Snow Fox")
    assert (saved.name, saved.params, saved.shared, saved.guild_id) == ("Snow Fox", PARAMS, False, GUILD)
    assert await presets.usable(GUILD, BOB, "snow  fox") == saved  # case and spaces do not matter
    assert await presets.usable(OTHER_GUILD, BOB, "Snow Fox") is None
    assert await presets.usable(GUILD, CAROL, "Snow Fox") is None  # not shared


async def test_a_name_is_unique_per_owner_and_guild_ignoring_case(presets: PresetStore) -> None:
    await save(presets, "fox")
    with pytest.raises(BadInputError, match="already have a preset called `FOX`"):
        await save(presets, "FOX")
    await save(presets, "fox", owner=CAROL)  # another member may use the name
    await save(presets, "fox", guild=OTHER_GUILD)  # and so may the same member in another guild


async def test_a_member_keeps_at_most_the_configured_number_per_guild(presets: PresetStore) -> None:
    for n in range(3):
        await save(presets, f"p{n}", most=3)
    with pytest.raises(UserError, match="already keep 3 presets"):
        await save(presets, "p3", most=3)
    await save(presets, "p3", guild=OTHER_GUILD, most=3)  # counted per guild


async def test_shared_presets_are_usable_by_everyone_in_their_guild_and_one_own_name_wins(
    presets: PresetStore,
) -> None:
    bobs = await save(presets, "fox")
    await presets.set_shared(GUILD, BOB, "fox", True)
    assert (await presets.usable(GUILD, CAROL, "fox")).id == bobs.id  # type: ignore[union-attr]
    assert await presets.usable(OTHER_GUILD, CAROL, "fox") is None
    carols = await save(presets, "fox", owner=CAROL)
    assert (await presets.usable(GUILD, CAROL, "fox")).id == carols.id  # type: ignore[union-attr]
    mine, shared = await presets.visible(GUILD, CAROL)
    assert [p.id for p in mine] == [carols.id] and [p.id for p in shared] == [bobs.id]


async def test_two_shared_presets_of_a_guild_cannot_have_the_same_name(presets: PresetStore) -> None:
    await save(presets, "fox")
    await save(presets, "Fox", owner=CAROL)
    await presets.set_shared(GUILD, BOB, "fox", True)
    with pytest.raises(BadInputError, match="already shares a preset called `Fox`"):
        await presets.set_shared(GUILD, CAROL, "Fox", True)


async def test_only_the_owner_shares_or_unshares(presets: PresetStore) -> None:
    await save(presets, "fox")
    with pytest.raises(UserError, match="no preset called `fox`"):
        await presets.set_shared(GUILD, CAROL, "fox", True)
    await presets.set_shared(GUILD, BOB, "fox", True)
    with pytest.raises(PermissionDeniedError, match="someone else's; only its owner can share"):
        await presets.set_shared(GUILD, CAROL, "fox", False)
    assert (await presets.set_shared(GUILD, BOB, "fox", False)).shared is False


async def test_the_owner_deletes_and_no_one_else_does(presets: PresetStore) -> None:
    await save(presets, "fox")
    await presets.set_shared(GUILD, BOB, "fox", True)
    with pytest.raises(PermissionDeniedError, match="only its owner or a member with Manage Server"):
        await presets.delete(GUILD, CAROL, "fox")
    with pytest.raises(UserError, match="no preset called"):
        await presets.delete(OTHER_GUILD, BOB, "fox")  # another guild's command never reaches it
    assert (await presets.delete(GUILD, BOB, "fox")).name == "fox"
    assert await presets.usable(GUILD, BOB, "fox") is None


async def test_an_admin_deletes_a_shared_preset_but_not_a_private_one(presets: PresetStore) -> None:
    await save(presets, "shared")
    await save(presets, "private")
    await presets.set_shared(GUILD, BOB, "shared", True)
    with pytest.raises(UserError, match="no preset called `private`"):
        await presets.delete(GUILD, CAROL, "private", as_admin=True)
    with pytest.raises(UserError, match="no preset called"):
        await presets.delete(OTHER_GUILD, CAROL, "shared", as_admin=True)
    assert (await presets.delete(GUILD, CAROL, "shared", as_admin=True)).owner_id == BOB


async def test_the_latest_finished_result_of_the_member_in_the_guild(presets: PresetStore) -> None:
    store = presets.store
    finished = {"state": JobState.DELIVERED, "guild_id": GuildId(GUILD)}
    await store.create(make_job(1, created_at=T0))
    for number, fields in (
        (2, {**finished, "finished_at": T0 + 10}),
        (3, {**finished, "finished_at": T0 + 20}),
        (4, {**finished, "finished_at": T0 + 30, "guild_id": GuildId(OTHER_GUILD)}),
        (5, {**finished, "finished_at": T0 + 40, "owner": CAROL}),
        (6, {"guild_id": GuildId(GUILD), "state": JobState.FAILED, "finished_at": T0 + 50}),
    ):
        await _insert(store, make_job(number, **fields))
    latest = await presets.latest_result(GUILD, BOB)
    assert latest is not None and latest.id == make_job(3).id
    assert await presets.latest_result(GUILD, 999) is None


async def _insert(store: JobStore, job: Any) -> None:
    """A finished row written directly (the state table's path to it is tested elsewhere)."""
    async with store.writing("test row") as db:
        marks = ", ".join("?" * len(JOB_COLUMNS))
        await db.execute(f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({marks})", job_values(job))


async def test_a_damaged_preset_row_is_a_store_error(presets: PresetStore, db_path: Path) -> None:
    await save(presets, "fox")
    with sqlite3.connect(db_path) as raw:
        raw.execute("UPDATE presets SET params = '[1, 2]'")
    raw.close()
    with pytest.raises(JobStoreError, match="unreadable preset row"):
        await presets.usable(GUILD, BOB, "fox")


# --- the schema step ---------------------------------------------------------------------------------------


async def test_a_version_3_file_gains_presets_and_keeps_its_jobs(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    async with aiosqlite.connect(db_path, isolation_level=None) as old:
        assert await migrate(old, target=3) == 0
        await old.execute(
            "INSERT INTO jobs (id, owner_id, guild_id, channel_id, workflow, kind, action, params, seed, state,"
            " created_at, finished_at) VALUES ('j1', 10, 1000, 500, 'txt2img', 'image', 'generate',"
            " '{\"prompt\": \"a fox\", \"steps\": 4}', '42', 'delivered', 1.5, 2.5)"
        )
    async with JobStore(db_path) as store:
        job = await store.get("j1")
        assert (job.state, job.params, job.seed) == (JobState.DELIVERED, {"prompt": "a fox", "steps": 4}, 42)
        presets = PresetStore(store)
        assert (await presets.latest_result(GUILD, BOB)) == job
        saved = await presets.save(GUILD, BOB, "fox", job.workflow, dict(job.params), most=5, source_job=job.id)
        assert saved.source_job == "j1"
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


# --- autocomplete ------------------------------------------------------------------------------------------


async def test_matching_names_are_the_members_own_first_then_shared_of_this_guild_only(presets: PresetStore) -> None:
    await save(presets, "zebra fox", owner=CAROL)
    await presets.set_shared(GUILD, CAROL, "zebra fox", True)
    await save(presets, "red fox", owner=CAROL)  # not shared
    await save(presets, "Fox den")
    await save(presets, "fox elsewhere", guild=OTHER_GUILD)
    assert await presets.matching(GUILD, BOB, "FOX", shared=True) == ["Fox den", "zebra fox"]
    assert await presets.matching(GUILD, BOB, "fox", shared=False) == ["Fox den"]
    assert await presets.matching(GUILD, BOB, "", shared=True) == ["Fox den", "zebra fox"]


async def test_matching_takes_what_was_typed_literally_and_finds_beyond_the_first_page(presets: PresetStore) -> None:
    for n in range(30):
        await save(presets, f"a{n:02d}", most=40)
    await save(presets, "zz_last", most=40)
    assert await presets.matching(GUILD, BOB, "_", shared=False) == ["zz_last"]  # '_' is not a wildcard
    assert await presets.matching(GUILD, BOB, "%", shared=False) == []
    assert await presets.matching(GUILD, BOB, "zz", shared=False) == ["zz_last"]
    assert len(await presets.matching(GUILD, BOB, "a", shared=False)) == 25
    assert await presets.matching(GUILD, BOB, "x" * 40, shared=False) == []
