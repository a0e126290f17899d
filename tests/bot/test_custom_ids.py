"""The custom_id codec: round trips, Discord's 100-character limit, and None (never an exception) for the rest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discomfy.bot.custom_ids import MAX_CUSTOM_ID, ComponentAction, ComponentRef, decode, encode, is_ours
from discomfy.jobs.state import JobId, new_job_id

JOB = JobId("0123456789abcdef0123456789abcdef")


def test_encode_has_version_action_job_and_index() -> None:
    assert encode(ComponentAction.UPSCALE, JOB, 2) == f"dc1:upscale:{JOB}:2"
    assert encode("cancel", JOB) == f"dc1:cancel:{JOB}"


@pytest.mark.parametrize("action", list(ComponentAction))
@pytest.mark.parametrize("index", [None, 0, 3, 99])
def test_every_action_round_trips(action: ComponentAction, index: int | None) -> None:
    custom_id = encode(action, JOB, index)
    assert decode(custom_id) == ComponentRef(action, JOB, index)
    assert len(custom_id) <= MAX_CUSTOM_ID


def test_ref_encodes_itself() -> None:
    ref = ComponentRef(ComponentAction.ANIMATE, JOB, 1)
    assert decode(ref.encode()) == ref


@given(job_id=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True), index=st.none() | st.integers(0, 99))
def test_any_valid_job_id_round_trips_within_100_characters(job_id: str, index: int | None) -> None:
    custom_id = encode(ComponentAction.REROLL, job_id, index)
    assert len(custom_id) <= MAX_CUSTOM_ID
    assert decode(custom_id) == ComponentRef(ComponentAction.REROLL, JobId(job_id), index)


def test_a_real_job_id_fits() -> None:
    assert len(encode(ComponentAction.DELETE, new_job_id(), 9)) < 60


@pytest.mark.parametrize(
    "custom_id",
    [
        "",
        "job:42:upscale",
        "dc1",
        "dc1:",
        "dc1:upscale",
        f"dc1:explode:{JOB}",
        f"dc2:upscale:{JOB}",
        f"dc1:upscale:{JOB}:",
        f"dc1:upscale:{JOB}:-1",
        f"dc1:upscale:{JOB}:01",
        f"dc1:upscale:{JOB}:100",
        f"dc1:upscale:{JOB}:1:2",
        "dc1:upscale:bad/id",
        "dc1:upscale:" + "a" * 65,
        f"DC1:upscale:{JOB}",
        f"dc1:upscale:{JOB}\n",
        "dc1:upscale:" + "a" * 200,
    ],
)
def test_not_ours_or_malformed_decodes_to_none(custom_id: str) -> None:
    assert decode(custom_id) is None


@given(st.text(max_size=150) | st.binary().map(repr) | st.none() | st.integers())
def test_decode_never_raises(custom_id: object) -> None:
    ref = decode(custom_id)
    assert ref is None or isinstance(ref, ComponentRef)


@given(st.text(alphabet="dc1:upscalecancel0123456789abcdef_-", max_size=60))
def test_decode_never_raises_on_near_misses(custom_id: str) -> None:
    ref = decode(custom_id)
    assert ref is None or ref.encode() == custom_id


@pytest.mark.parametrize("job_id", ["", "a:b", "x" * 65, "ünïcode"])
def test_encode_refuses_a_job_id_that_would_not_decode(job_id: str) -> None:
    with pytest.raises(ValueError):
        encode(ComponentAction.INFO, job_id)


@pytest.mark.parametrize("index", [-1, 100, True])
def test_encode_refuses_an_index_out_of_range(index: int) -> None:
    with pytest.raises(ValueError):
        encode(ComponentAction.UPSCALE, JOB, index)


def test_an_unknown_action_is_refused_by_encode() -> None:
    with pytest.raises(ValueError):
        encode("explode", JOB)


def test_is_ours_knows_the_namespace_of_every_version() -> None:
    assert is_ours(f"dc2:whatever:{JOB}") and is_ours(encode("info", JOB))
    assert not is_ours("job:42:upscale") and not is_ours(None)
