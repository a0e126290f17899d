import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discomfy.jobs import state
from discomfy.jobs.state import (
    ACTIVE,
    AT_SERVER,
    CANCELLABLE,
    TERMINAL,
    TRANSITIONS,
    ApplicationId,
    IllegalTransitionError,
    InteractionRef,
    JobState,
    PromptId,
    advance,
    amend,
    can_transition,
    new_job_id,
)
from discomfy.outcome import Failure
from tests.jobs.factories import T0, make_job

S = JobState
AT = {"server_url": "http://gpu-1:8188", "prompt_id": PromptId("p-1")}


def submitted(**fields: object):
    return advance(make_job(), S.SUBMITTING, now=T0 + 1, **{**AT, **fields})


def test_the_happy_path_is_legal_step_by_step() -> None:
    job = make_job()
    for now, new in enumerate([S.SUBMITTING, S.QUEUED, S.RUNNING, S.DELIVERING, S.DELIVERED], start=1):
        job = advance(job, new, now=T0 + now, **(AT if new is S.SUBMITTING else {}))
        assert job.state is new


def test_an_illegal_transition_raises_and_leaves_the_job_unchanged() -> None:
    job = make_job()
    before = dataclasses.replace(job)
    with pytest.raises(IllegalTransitionError) as caught:
        advance(job, S.RUNNING, now=T0 + 1)
    assert job == before and job.state is S.WAITING
    assert (caught.value.current, caught.value.requested) == (S.WAITING, S.RUNNING)


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_states_have_no_way_out(terminal: JobState) -> None:
    assert TRANSITIONS[terminal] == frozenset()
    for new in JobState:
        assert not can_transition(terminal, new)


def test_the_terminal_states_are_delivered_failed_cancelled_lost() -> None:
    assert {S.DELIVERED, S.FAILED, S.CANCELLED, S.LOST} == TERMINAL


def test_active_states_are_every_state_that_is_not_terminal() -> None:
    assert {S.WAITING, S.SUBMITTING, S.QUEUED, S.RUNNING, S.DELIVERING} == ACTIVE


def test_cancel_is_allowed_until_outputs_are_in_hand() -> None:
    assert {S.WAITING, S.SUBMITTING, S.QUEUED, S.RUNNING} == CANCELLABLE
    assert not make_job(state=S.DELIVERING).cancellable


def test_only_submitting_may_move_to_itself() -> None:
    assert [s for s in JobState if can_transition(s, s)] == [S.SUBMITTING]


def test_submitting_needs_a_server_and_a_prompt_id() -> None:
    with pytest.raises(IllegalTransitionError, match="server_url and a prompt_id"):
        advance(make_job(), S.SUBMITTING, now=T0, server_url="http://gpu-1:8188")


@pytest.mark.parametrize("new", [S.FAILED, S.LOST])
def test_failed_and_lost_need_a_failure_kind(new: JobState) -> None:
    with pytest.raises(IllegalTransitionError, match="failure kind"):
        advance(submitted(), new, now=T0 + 2, error="a detail alone is not enough")
    moved = advance(submitted(), new, now=T0 + 2, failure=Failure.LOST)
    assert moved.failure is Failure.LOST and moved.error is None


def test_times_are_stamped_by_the_transitions() -> None:
    job = submitted()
    running = advance(advance(job, S.QUEUED, now=T0 + 2), S.RUNNING, now=T0 + 3)
    done = advance(advance(running, S.DELIVERING, now=T0 + 4), S.DELIVERED, now=T0 + 5)
    assert (job.submitted_at, running.started_at, done.finished_at) == (T0 + 1, T0 + 3, T0 + 5)
    assert running.finished_at is None


def test_going_back_to_waiting_forgets_the_server_and_prompt_id() -> None:
    job = advance(submitted(), S.WAITING, now=T0 + 2)
    assert (job.server_url, job.prompt_id, job.submitted_at) == (None, None, None)


def test_a_job_the_server_forgot_can_be_sent_to_another_server() -> None:
    queued = advance(submitted(), S.QUEUED, now=T0 + 2)
    again = advance(queued, S.SUBMITTING, now=T0 + 3, server_url="http://gpu-2:8188", prompt_id=PromptId("p-2"))
    assert (again.state, again.server_url, again.prompt_id, again.submitted_at) == (
        S.SUBMITTING,
        "http://gpu-2:8188",
        "p-2",
        T0 + 3,
    )


def test_the_server_changes_only_on_entering_submitting() -> None:
    queued = advance(submitted(), S.QUEUED, now=T0 + 2)
    with pytest.raises(IllegalTransitionError, match="only on submitting"):
        advance(queued, S.RUNNING, now=T0 + 3, server_url="http://gpu-2:8188")


def test_advance_refuses_to_set_the_stamped_times_or_the_id() -> None:
    with pytest.raises(ValueError, match="finished_at"):
        advance(submitted(), S.CANCELLED, now=T0, finished_at=0.0)
    with pytest.raises(ValueError, match="id"):
        advance(submitted(), S.CANCELLED, now=T0, id="other")


def test_amend_changes_fields_that_are_not_about_state() -> None:
    job = amend(make_job(), message_id=1234, error="note")
    assert (job.message_id, job.error, job.state) == (1234, "note", S.WAITING)


@pytest.mark.parametrize("name", ["state", "server_url", "prompt_id", "started_at", "id", "created_at"])
def test_amend_refuses_state_fields(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        amend(make_job(), **{name: None})


def test_amend_refuses_unknown_fields() -> None:
    with pytest.raises(TypeError, match="colour"):
        amend(make_job(), colour="red")


def test_params_are_read_only_and_the_job_stays_hashable() -> None:
    job = make_job(params={"prompt": "a cat", "steps": 20})
    with pytest.raises(TypeError):
        job.params["steps"] = 99  # type: ignore[index]
    assert job.params == {"prompt": "a cat", "steps": 20}
    assert hash(job) == hash(make_job(params={"other": 1}))


def test_the_interaction_token_is_kept_out_of_repr() -> None:
    job = make_job(interaction=InteractionRef(ApplicationId(1), "secret-token", T0))
    assert "secret-token" not in repr(job)


def test_an_interaction_token_is_usable_until_shortly_before_15_minutes() -> None:
    ref = InteractionRef(ApplicationId(1), "t", T0)
    assert ref.expires_at == T0 + 900
    assert ref.usable(T0 + 800, margin=60)
    assert not ref.usable(T0 + 850, margin=60)


def test_new_job_ids_are_uuid4_hex() -> None:
    assert re.fullmatch(r"[0-9a-f]{12}4[0-9a-f]{19}", new_job_id())


def test_the_header_table_matches_transitions() -> None:
    """The module docstring lists the moves off the happy path; keep it true."""
    happy = [S.WAITING, S.SUBMITTING, S.QUEUED, S.RUNNING, S.DELIVERING, S.DELIVERED]
    doc = state.__doc__ or ""
    table = doc[doc.index("may also go to") : doc.index("delivered, failed, cancelled, lost:")]
    listed: dict[JobState, set[JobState]] = {}
    source = S.WAITING
    for line in table.splitlines()[1:]:
        head, _, rest = line.strip().partition(" ")
        if head in JobState._value2member_map_:
            source, line = JobState(head), rest
        names = re.sub(r"\([^)]*\)", "", line).split(",")
        listed.setdefault(source, set()).update(JobState(n.strip()) for n in names if n.strip())
    for source in ACTIVE:
        nxt = {happy[happy.index(source) + 1]}
        assert listed[source] | nxt == TRANSITIONS[source], source


# -- property: random sequences of requested moves --

FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "server_url": st.sampled_from(["http://gpu-1:8188", "http://gpu-2:8188", None]),
        "prompt_id": st.sampled_from(["p-1", "p-2", None]),
        "error": st.sampled_from(["boom", None]),
    },
)


@settings(deadline=None, database=None)
@given(st.lists(st.tuples(st.sampled_from(list(JobState)), FIELDS), max_size=30))
def test_random_moves_never_reach_an_illegal_state(moves: list[tuple[JobState, dict[str, object]]]) -> None:
    job = make_job()
    for i, (new, fields) in enumerate(moves):
        before = job
        try:
            job = advance(job, new, now=T0 + i, **fields)
        except IllegalTransitionError:
            assert job is before
            continue
        assert new in TRANSITIONS[before.state]
        assert job.state is new
        if job.state in AT_SERVER:
            assert job.server_url and job.prompt_id
        if job.state in {S.FAILED, S.LOST}:
            assert job.error
        assert (job.finished_at is not None) == (job.state in TERMINAL)
        if job.state is S.WAITING:
            assert job.server_url is None and job.prompt_id is None
