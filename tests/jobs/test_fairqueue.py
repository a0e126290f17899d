from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discomfy.jobs.fairqueue import FairQueue
from discomfy.jobs.state import JobId, JobKind, UserId
from tests.jobs.factories import make_job

IMAGE, VIDEO = JobKind.IMAGE, JobKind.VIDEO


@dataclass(frozen=True)
class Item:
    id: JobId
    owner_id: UserId
    kind: JobKind = IMAGE


def item(name: str, kind: JobKind = IMAGE) -> Item:
    """``item("a3")`` is user a's job a3."""
    return Item(JobId(name), UserId(ord(name[0])), kind)


def queue_of(*names: str, weights: dict[JobKind, int] | None = None) -> FairQueue[Item]:
    queue: FairQueue[Item] = FairQueue(weights)
    for name in names:
        queue.push(item(name.rstrip("v"), VIDEO if name.endswith("v") else IMAGE))
    return queue


def drain(queue: FairQueue[Item]) -> list[str]:
    out = []
    while (job := queue.pop_next()) is not None:
        out.append(job.id)
    return out


def test_twenty_jobs_from_five_users_come_out_interleaved() -> None:
    names = [f"{user}{n}" for user in "abcde" for n in range(4)]  # each user queues 4 at once, one after another
    assert drain(queue_of(*names)) == [f"{user}{n}" for n in range(4) for user in "abcde"]


def test_each_users_jobs_come_out_in_the_order_they_were_queued() -> None:
    order = drain(queue_of("a1", "b1", "a2", "a3", "b2"))
    assert [j for j in order if j[0] == "a"] == ["a1", "a2", "a3"]


def test_a_heavy_video_does_not_starve_others() -> None:
    order = drain(queue_of("a1v", "a2", "a3", "b1", "b2", "b3", "b4", "b5"))
    assert order[:6] == ["a1", "b1", "b2", "b3", "b4", "a2"]


def test_a_video_waits_its_turn_not_behind_a_flood_of_images() -> None:
    queue = queue_of(*[f"a{n}" for n in range(10)], *[f"b{n}" for n in range(10)], "c1v")
    assert queue.position_of(JobId("c1")) == 3


def test_a_user_whose_last_job_was_heavy_waits_proportionally_longer() -> None:
    queue = queue_of("a1v", *[f"b{n}" for n in range(8)])
    assert queue.pop_next() == item("a1", VIDEO)
    queue.push(item("a2"))
    assert queue.position_of(JobId("a2")) == 5  # b0…b3 (four images, the video's weight) go first


def test_weights_are_configurable_per_kind() -> None:
    queue = queue_of("a1v", "a2", "b1", "b2", "b3", weights={VIDEO: 2})
    assert drain(queue) == ["a1", "b1", "b2", "a2", "b3"]


def test_a_newcomer_takes_turns_with_a_user_who_was_alone() -> None:
    queue = queue_of(*[f"a{n}" for n in range(10)])
    for _ in range(5):
        queue.pop_next()
    for n in range(3):
        queue.push(item(f"b{n}"))
    assert drain(queue)[:6] == ["b0", "a5", "b1", "a6", "b2", "a7"]


def test_a_job_that_cannot_run_is_skipped_and_keeps_its_place() -> None:
    queue = queue_of("a1", "b1", "c1")
    assert queue.pop_next(lambda job: job.owner_id != item("a").owner_id) == item("b1")
    assert queue.position_of(JobId("a1")) == 1
    assert queue.pop_next() == item("a1")


def test_a_blocked_job_holds_its_owners_turn() -> None:
    queue = queue_of("a1", "a2", "b1")
    assert queue.pop_next(lambda job: job.id != "a1") == item("b1")  # not a2: a1 holds a's turn


def test_pop_next_returns_none_when_nothing_can_run() -> None:
    queue = queue_of("a1")
    assert queue.pop_next(lambda job: False) is None
    assert len(queue) == 1


def test_pop_next_on_an_empty_queue_returns_none() -> None:
    assert FairQueue[Item]().pop_next() is None


def test_positions_follow_the_fair_order() -> None:
    queue = queue_of("a1", "a2", "b1", "b2")
    assert [queue.position_of(JobId(n)) for n in ("a1", "b1", "a2", "b2")] == [1, 2, 3, 4]


def test_positions_are_right_after_a_removal() -> None:
    queue = queue_of("a1", "a2", "b1", "b2", "c1")
    assert [queue.position_of(JobId(n)) for n in ("a1", "b1", "c1", "a2", "b2")] == [1, 2, 3, 4, 5]
    assert queue.remove(JobId("a1")) == item("a1")
    # a was not served, so its next job takes a1's place in the rotation.
    assert [queue.position_of(JobId(n)) for n in ("a2", "b1", "c1", "b2")] == [1, 2, 3, 4]
    assert queue.position_of(JobId("a1")) is None
    assert queue.remove(JobId("b1")) == item("b1")
    assert [queue.position_of(JobId(n)) for n in ("a2", "b2", "c1")] == [1, 2, 3]


def test_removing_a_users_last_job_removes_them_from_the_rotation() -> None:
    queue = queue_of("a1", "b1", "c1")
    queue.remove(JobId("b1"))
    assert drain(queue) == ["a1", "c1"]


def test_removing_an_unknown_job_returns_none() -> None:
    assert queue_of("a1").remove(JobId("zz")) is None


def test_a_job_cannot_be_queued_twice() -> None:
    queue = queue_of("a1")
    with pytest.raises(ValueError, match="already queued"):
        queue.push(item("a1"))


def test_weights_must_be_whole_numbers_of_at_least_one() -> None:
    with pytest.raises(ValueError, match="video"):
        FairQueue({VIDEO: 0})


def test_job_rows_can_be_queued() -> None:
    queue = FairQueue()
    queue.push(make_job(1, owner=1))
    queue.push(make_job(2, owner=2, kind=VIDEO))
    assert [j.id for j in queue] == [make_job(1).id, make_job(2).id]
    assert queue.jobs_of(UserId(2)) == [make_job(2, owner=2, kind=VIDEO)]


# -- properties --

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 4), st.sampled_from([IMAGE, VIDEO, JobKind.UPSCALE])),
        st.tuples(st.just("pop"), st.integers(0, 4), st.booleans()),
        st.tuples(st.just("remove"), st.integers(0, 40), st.booleans()),
    ),
    max_size=60,
)


@settings(deadline=None, database=None)
@given(OPS)
def test_every_pushed_job_leaves_exactly_once(ops: list[tuple[str, int, object]]) -> None:
    queue: FairQueue[Item] = FairQueue()
    pushed: list[JobId] = []
    left: list[JobId] = []
    for op, number, extra in ops:
        if op == "push":
            job = Item(JobId(f"j{len(pushed)}"), UserId(number), extra)  # type: ignore[arg-type]
            queue.push(job)
            pushed.append(job.id)
        elif op == "pop":
            blocked = UserId(number) if extra else None
            popped = queue.pop_next(lambda j, blocked=blocked: j.owner_id != blocked)
            if popped is not None:
                assert popped.owner_id != blocked
                left.append(popped.id)
        elif (removed := queue.remove(JobId(f"j{number}"))) is not None:
            left.append(removed.id)
        assert len(queue) == len(pushed) - len(left)
    left += drain(queue)
    assert sorted(left) == sorted(pushed)


@settings(deadline=None, database=None)
@given(OPS)
def test_positions_predict_the_pops(ops: list[tuple[str, int, object]]) -> None:
    queue: FairQueue[Item] = FairQueue()
    for i, (op, number, extra) in enumerate(ops):
        if op == "push":
            queue.push(Item(JobId(f"j{i}"), UserId(number), extra))  # type: ignore[arg-type]
        elif op == "pop":
            queue.pop_next(lambda j, n=number: j.owner_id != n)
    predicted = [job.id for job in queue.order()]
    assert [queue.position_of(job_id) for job_id in predicted] == list(range(1, len(predicted) + 1))
    assert drain(queue) == predicted
