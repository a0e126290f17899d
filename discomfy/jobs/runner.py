"""One job's task: follow its engine run, keep its row true to what ComfyUI says, then store and deliver.

How it works:
- ``state_for`` (pure) maps each engine snapshot onto the state table: queued at ComfyUI → ``queued`` (only
  once the submission landed, i.e. after our ``on_submit`` hook fired), running → ``running``, done →
  ``delivering``, failed → ``failed`` (``lost`` when the snapshot's failure kind is ``Failure.LOST``),
  cancelled → ``cancelled``. A snapshot that would make an illegal move (the engine's "queued again" after a
  server lost a running job, say) changes nothing: the next ``on_submit`` moves the row to ``submitting``.
- The engine's ``on_submit`` hook writes ``submitting`` with the server and our prompt_id *before* the POST (and,
  for a job the dispatcher moved to another workflow of its fallback chain, that workflow with its params and
  seed, in the same write).
- Every snapshot is handed to ``observer.show``, which never blocks (it keeps the latest and draws it when the
  message may be edited: the one latest-wins buffer is the bot's message editor); a failing one is logged.
- Done: the row moves to ``delivering``, the files go to the output sink, then ``observer.deliver`` is called,
  retried (``retry.py``) for a bounded time; the row becomes ``delivered`` only after it returned. If it keeps
  failing the row stays ``delivering`` and the next start delivers the stored outputs again.
- Extend (``JobAction.EXTEND``): before storing, the video the server made is joined after the video it
  continues (``parent_id``'s output ``source_index``, read from the output store, which never evicts the source
  of an active job): ``media.join.join_videos`` in a thread, the junction frame once, at the original's frame
  rate. The joined video is what is stored, so a restart after that delivers it as is, and a restart before it
  (files fetched again from the server) joins again. The original gone → ``Failure.SOURCE_GONE``; a new part
  that cannot be read → ``Failure.BAD_OUTPUT``.
- An unexpected exception ends the job ``failed`` (``Failure.INTERNAL``) with a reference id that is also in the
  log, with the trace.
- Also here, for the service: the observer and output-sink protocols, ``ServiceOptions``, and building a job's
  ``JobSpec`` from its bound graph (``job_spec``; ``recorded_params`` is what the row keeps to bind it again).

Never: cancel a job at ComfyUI because our task was cancelled (that is a shutdown: the job is reattached on the
next start), change a row's state except through the store (and so the state table), or let an observer's
exception reach the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from discomfy.comfy.engine import Engine, InputImage, JobRun, JobSpec
from discomfy.comfy.progress import Phase, Snapshot
from discomfy.comfy.stream import FetchedFile
from discomfy.comfy.types import MediaKind
from discomfy.errors import ComfyError, DiscomfyError, reference_id
from discomfy.jobs.records import StoredOutput
from discomfy.jobs.state import (
    CANCELLABLE,
    TERMINAL,
    Job,
    JobAction,
    JobKind,
    JobState,
    PromptId,
    amend,
    new_prompt_id,
)
from discomfy.jobs.store import JobStore
from discomfy.logs import current_job
from discomfy.media.errors import MediaError
from discomfy.media.join import join_videos
from discomfy.media.sniff import Family, sniff
from discomfy.outcome import Failure
from discomfy.retry import Backoff, describe, retry
from discomfy.workflows import BoundGraph, ParamType, Workflow

log = logging.getLogger(__name__)

S = JobState


class JobObserver(Protocol):
    """What the bot implements: the progress message and the delivery of results."""

    def show(self, job: Job, snapshot: Snapshot, our_queue_position: int | None) -> None:
        """The job's latest state; must not block (keep the latest, draw it when the message may be edited)."""
        ...

    async def deliver(self, job: Job, outputs: Sequence[StoredOutput]) -> None:
        """Put the outputs on Discord; raise to have it retried later (the outputs stay stored)."""
        ...

    async def ended(self, job: Job, snapshot: Snapshot | None) -> None:
        """The job failed, was cancelled or was lost (``job.failure`` says why): tell the user."""
        ...


class OutputSink(Protocol):
    """Where a finished job's files are kept (``jobs/outputs.py`` ``OutputStore`` is one)."""

    async def save(self, job: Job, files: Sequence[FetchedFile]) -> list[StoredOutput]: ...

    async def read(self, output: StoredOutput) -> bytes | None: ...

    def claim_source(self, job_id: str, index: int) -> contextlib.AbstractAsyncContextManager[StoredOutput | None]:
        """Held while the row of a job made from output ``index`` of ``job_id`` is created (no eviction)."""
        ...


#: Delivery waits 2 s, 4 s, … up to a minute between tries (jittered): Discord or our disk needs time to recover.
DELIVER_BACKOFF = Backoff(base=2.0, cap=60.0)


@dataclass(frozen=True)
class ServiceOptions:
    #: How often the dispatcher looks at the pool even when nothing woke it (health changes, resubmissions).
    poll_interval: float = 0.5
    #: Ask ComfyUI for preview images of our jobs.
    previews: bool = True
    #: Fair-queue weights per kind (``fairqueue.DEFAULT_WEIGHTS`` for the rest).
    weights: Mapping[JobKind, int] | None = None
    #: One ``deliver`` call may take this long before it counts as failed.
    deliver_timeout: float = 300.0
    #: Delivery is retried for this long, then left for the next start.
    deliver_give_up_after: float = 600.0
    deliver_backoff: Backoff = DELIVER_BACKOFF
    #: ``cancel`` waits this long for the engine to confirm before returning the row as it is.
    cancel_wait: float = 15.0


def lost_or_failed(snapshot: Snapshot) -> JobState:
    return S.LOST if snapshot.failure is Failure.LOST else S.FAILED


def state_for(current: JobState, snapshot: Snapshot, *, landed: bool) -> JobState | None:
    """The state a snapshot moves the row to, or None when it changes nothing. Pure."""
    phase = snapshot.phase
    if current in TERMINAL or current is S.DELIVERING:
        return None
    if phase is Phase.QUEUED:
        return S.QUEUED if current is S.SUBMITTING and landed else None
    if phase is Phase.RUNNING:
        return S.RUNNING if current in (S.SUBMITTING, S.QUEUED) else None
    if phase is Phase.DONE:
        return S.DELIVERING if current in (S.SUBMITTING, S.QUEUED, S.RUNNING) else None
    if phase is Phase.CANCELLED:
        return S.CANCELLED if current in CANCELLABLE else None
    return S.FAILED if current is S.WAITING else lost_or_failed(snapshot)  # never sent: nothing to lose


def params_with_inputs(workflow: Workflow, params: Mapping[str, Any], inputs: Sequence[InputImage]) -> dict[str, Any]:
    """The request's params, with image options left empty filled from ``inputs``, in order."""
    given = dict(params)
    empty = [p.name for p in workflow.params.values() if p.type is ParamType.IMAGE and not given.get(p.name)]
    for name, image in zip(empty, inputs, strict=False):
        given[name] = image.load_image_value
    return given


def recorded_params(bound: BoundGraph) -> dict[str, Any]:
    """The bound values worth storing: plain JSON values (not links), so binding them again is the same."""
    return {k: v for k, v in bound.values.items() if isinstance(v, str | int | float | bool)}


def job_spec(
    job: Job, bound: BoundGraph, inputs: tuple[InputImage, ...], *, preview: bool, prompt_id: str | None = None
) -> JobSpec:
    """What the engine runs: job id = websocket clientId; a new prompt_id unless the row already has one."""
    return JobSpec(job.id, prompt_id or new_prompt_id(), bound.graph, bound.models, inputs, preview, bound.frame_nodes)


async def refuse_resubmit(server_url: str, prompt_id: str) -> None:
    """The ``on_submit`` of a run that only fetches a finished job's files again: never send it anew."""
    raise ComfyError(f"prompt {prompt_id} is finished; its result is not made again on {server_url}")


def waiting_snapshot(job: Job) -> Snapshot:
    """What the observer is given for a job still in our own queue (no ComfyUI snapshot exists yet)."""
    return Snapshot(prompt_id=job.prompt_id or "", phase=Phase.QUEUED)


@dataclass
class RunnerDeps:
    store: JobStore
    engine: Engine
    outputs: OutputSink
    observer: JobObserver
    options: ServiceOptions
    #: Called whenever a job's server slot may have freed up (the dispatcher looks again).
    wake: Callable[[], None]


class JobRunner:
    """The task of one job. ``job`` is kept current (the bot's ``set_message`` amends it too)."""

    def __init__(
        self, deps: RunnerDeps, job: Job, run: JobRun | None = None, *, rechosen: Mapping[str, Any] | None = None
    ) -> None:
        self.deps = deps
        self.job = job
        self.run = run
        self._landed = False
        #: The workflow chosen at dispatch (``workflow``, ``params``, ``seed``) when it is not the row's: written
        #: with ``submitting``, in the same write, before the prompt is sent.
        self.rechosen = dict(rechosen or {})

    async def on_submit(self, server_url: str, prompt_id: str) -> None:
        """The engine's hook: the row names the server and the prompt *before* the prompt is sent."""
        self.job = await self.deps.store.transition(
            self.job.id, S.SUBMITTING, server_url=server_url, prompt_id=PromptId(prompt_id), **self.rechosen
        )
        self._landed = True
        log.info("job %s: submitting to %s as prompt %s", self.job.id, server_url, prompt_id)

    async def follow(self) -> None:
        """Follow the engine run to its end, then deliver or report the end."""
        assert self.run is not None
        await self._guarded(self._follow(self.run))

    async def redeliver(self) -> None:
        """A ``delivering`` row after a restart: deliver its stored outputs. With none stored (the bot stopped
        while saving), ``run`` (attached to the finished prompt) fetches the files from the server again."""
        await self._guarded(self._redeliver())

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        current_job.set(self.job.id)  # this task's log lines (and its children's) carry the job id
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._fail_unexpectedly(exc)
        finally:
            self.deps.wake()

    async def _follow(self, run: JobRun) -> None:
        iterator = aiter(run)
        try:
            async for snapshot in iterator:
                await self._apply(snapshot)
                self._show(snapshot)
        except Exception:
            if not run.finished:
                await run.cancel()  # we can no longer follow it: do not leave it running unwatched
            raise
        finally:
            if isinstance(iterator, AsyncGenerator):
                await iterator.aclose()
        result = run.result
        assert result is not None
        self.deps.wake()  # the run gave its server slot back: the next job need not wait for our delivery
        if self.job.state is S.DELIVERING and result.phase is Phase.DONE:
            await self._store_and_deliver(result.files)
            return
        if self.job.state not in TERMINAL:
            # Done but the files could not be fetched, or an end the state table had no move for.
            failure = result.snapshot.failure or Failure.FETCH_FAILED
            await self._fail(failure, result.snapshot.error)
        await self._ended(result.snapshot)

    def _show(self, snapshot: Snapshot) -> None:
        try:
            self.deps.observer.show(self.job, snapshot, None)
        except Exception:
            log.exception("job %s: the observer failed on a progress update (ignored)", self.job.id)

    async def _apply(self, snapshot: Snapshot) -> None:
        new = state_for(self.job.state, snapshot, landed=self._landed)
        if new is None:
            return
        if new in (S.FAILED, S.LOST):
            await self._fail(snapshot.failure or Failure.SERVER, snapshot.error, new)
            return
        self.job = await self.deps.store.transition(self.job.id, new)

    async def _fail(self, failure: Failure, detail: str | None, state: JobState = S.FAILED) -> None:
        self.job = await self.deps.store.transition(self.job.id, state, failure=failure, error=detail)

    async def _store_and_deliver(self, files: Sequence[FetchedFile]) -> None:
        if not files:
            await self._fail(Failure.NO_OUTPUT, None)
            await self._ended(None)
            return
        if self.job.action is JobAction.EXTEND:
            failure, joined = await self._joined(files)
            if failure is not None:
                await self._fail(failure, None)
                await self._ended(None)
                return
            files = joined
        stored = await self.deps.outputs.save(self.job, files)
        await self._deliver(stored)

    async def _joined(self, files: Sequence[FetchedFile]) -> tuple[Failure | None, tuple[FetchedFile, ...]]:
        """Extend: the video the server made, joined after the video it continues (see the module's header)."""
        part = next((f for f in files if (kind := sniff(f.data)) is not None and kind.family is Family.VIDEO), None)
        if part is None:
            log.warning("job %s: extend: the server sent no video to join", self.job.id)
            return Failure.BAD_OUTPUT, ()
        original: bytes | None = None
        if self.job.parent_id is not None:
            sources = [o for o in await self.deps.store.outputs(self.job.parent_id) if o.index == self.job.source_index]
            original = await self.deps.outputs.read(sources[0]) if sources else None
        if original is None:
            log.warning("job %s: extend: the video of job %s is gone", self.job.id, self.job.parent_id)
            return Failure.SOURCE_GONE, ()
        try:
            joined = await asyncio.to_thread(join_videos, original, part.data)
        except MediaError as exc:
            log.warning("job %s: extend: could not join the videos: %s", self.job.id, exc)
            return Failure.BAD_OUTPUT, ()
        stem = part.output.filename.rsplit(".", 1)[0]
        output = dataclasses.replace(part.output, filename=f"{stem}.mp4", kind=MediaKind.VIDEO)
        log.info("job %s: extend: %d frames at %s fps joined", self.job.id, joined.frames, joined.rate)
        return None, (FetchedFile(output, joined.data),)

    async def _redeliver(self) -> None:
        stored = await self.deps.store.outputs(self.job.id)
        if stored:
            await self._deliver(stored)
            return
        if self.run is None:
            raise RuntimeError("a delivering job has no stored outputs and no server to fetch them from")
        async for _ in self.run:
            pass
        result = self.run.result
        if result is None or result.phase is not Phase.DONE:
            await self._fail(Failure.FETCH_FAILED, None)
            await self._ended(None if result is None else result.snapshot)
            return
        await self._store_and_deliver(result.files)

    async def _deliver(self, outputs: Sequence[StoredOutput]) -> None:
        options = self.deps.options

        async def once() -> None:
            async with asyncio.timeout(options.deliver_timeout):
                await self.deps.observer.deliver(self.job, outputs)

        try:
            await retry(
                once,
                what=f"job {self.job.id}: delivery",
                retryable=lambda exc: True,  # Discord or our disk: whatever it was, the stored files wait
                give_up_after=options.deliver_give_up_after,
                backoff=options.deliver_backoff,
                logger=log,
            )
        except Exception as exc:
            log.error(
                "job %s: delivery kept failing (last: %s); it stays 'delivering' and is tried again on the next start",
                self.job.id,
                describe(exc),
            )
            return
        self.job = await self.deps.store.transition(self.job.id, S.DELIVERED)
        log.info("job %s: delivered (%d file(s))", self.job.id, len(outputs))

    async def _ended(self, snapshot: Snapshot | None) -> None:
        log.info("job %s: ended %s%s", self.job.id, self.job.state, f" ({self.job.error})" if self.job.error else "")
        try:
            await self.deps.observer.ended(self.job, snapshot)
        except Exception:
            log.exception("job %s: the observer failed on the job's end (ignored)", self.job.id)

    async def _fail_unexpectedly(self, exc: Exception) -> None:
        ref = reference_id()
        log.error("job %s: unexpected error [ref %s]", self.job.id, ref, exc_info=exc)
        # Ours (disk full, database, …) carry their kind; anything else is a bug.
        failure = exc.failure if isinstance(exc, DiscomfyError) else Failure.INTERNAL
        if self.job.state in TERMINAL:
            return
        try:
            await self._fail(failure, ref)
        except Exception:
            log.exception("job %s: could not record the failure [ref %s]", self.job.id, ref)
            self.job = amend(self.job, failure=failure, error=ref)
        await self._ended(None)
