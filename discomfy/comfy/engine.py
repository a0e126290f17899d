"""The ComfyUI engine: run one job on the server pool and follow it to its end, whatever the servers do.

How it works: ``Engine.start(spec)`` returns a ``JobRun``; iterating it yields progress snapshots, from
"queued" to a terminal one (done, failed or cancelled), and then ``run.result`` holds the final snapshot and
the output files. Inside, one attempt is: a slot on the least-loaded server that has the models
(``ServerPool.acquire``), the input images uploaded under content-hash names (so the same image is stored
once and a retried upload is harmless), ``on_submit(server, prompt_id)`` so the caller records where the job
goes *before* it is sent, then a ``JobStream`` (the job's own websocket, exactly-once submission,
reconciliation). When a server loses the job (a restart empties its queue), a job that had not started is
submitted again, on whichever server is best now; a running one fails with a clear message, unless the
configuration allows resubmitting those too.

The run ends as soon as the result is in hand: when the websocket's account of the job is complete, the
server's record of it is read afterwards (``JobRun.confirmation``, a task the engine keeps until it ends and
``Engine.close`` cancels; see ``stream.py`` for what happens when it disagrees).

Cancel (``JobRun.cancel``) works at every stage: waiting for a slot (nothing was sent), while the job's socket
is still connecting (nothing is sent), during submission (cancelled right after it lands),
queued or running at ComfyUI (``cancel_remote``: targeted, never another user's job).

Never: let an error other than our own escape the iteration (every end is a terminal snapshot), send a job
whose ``on_submit`` failed, or hold a server slot after the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from discomfy.comfy.http import ComfyUnreachableError
from discomfy.comfy.pool import Lease, ServerPool
from discomfy.comfy.progress import Phase, ProgressTracker, Snapshot
from discomfy.comfy.remote import cancel_remote
from discomfy.comfy.stream import Confirmation, JobLostError, JobResult, JobStream
from discomfy.errors import ComfyError, DiscomfyError
from discomfy.logs import current_job

log = logging.getLogger(__name__)

#: Where our uploads go on the server (``input/discomfy/``); LoadImage then reads ``discomfy/<name>``.
UPLOAD_SUBFOLDER = "discomfy"


@dataclass(frozen=True)
class InputImage:
    """An image a workflow's LoadImage reads, named by its content so the server stores it once."""

    name: str
    data: bytes

    @classmethod
    def from_bytes(cls, data: bytes, extension: str = "png") -> InputImage:
        return cls(f"{hashlib.sha256(data).hexdigest()[:32]}.{extension.lstrip('.').lower()}", data)

    @property
    def load_image_value(self) -> str:
        """What a LoadImage node's ``image`` input must say to read this file."""
        return f"{UPLOAD_SUBFOLDER}/{self.name}"


@dataclass(frozen=True)
class JobSpec:
    #: Ours; also the job's websocket clientId.
    job_id: str
    #: Ours (a UUID4), recorded before submission so a crash can be resumed by asking about it.
    prompt_id: str
    graph: Mapping[str, Any]
    needed_models: frozenset[str] = frozenset()
    inputs: tuple[InputImage, ...] = ()
    preview: bool = True
    #: Nodes whose progress counts frames, beyond ComfyUI's own (the workflow's manifest): node id → the input
    #: holding its multiplier when its ticks are new frames only, else None (``comfy.graph_info``).
    frame_nodes: Mapping[str, str | None] = field(default_factory=dict)


#: Called with (server url, prompt_id) right before the prompt is sent; if it raises, nothing is sent.
SubmitHook = Callable[[str, str], Awaitable[None]]
#: A scheduler's own queue for a job to be sent again (its server lost it before it started): returns the slot
#: the scheduler grants it, in its order (``jobs/service.py``). Without one, the run takes the pool's next slot.
Requeue = Callable[["JobSpec"], Awaitable[Lease]]


@dataclass
class EngineOptions:
    #: ``extra_data.preview_method`` asked of the server when a job wants previews.
    preview_method: str = "auto"
    #: Submit a job again when its server lost it while it was *running* (it starts over).
    resubmit_running: bool = False
    #: How many times one job may be submitted again after servers lost it.
    max_resubmits: int = 2
    #: Longest wait for a free server slot before the job fails (None: wait as long as it takes).
    slot_wait: float | None = None
    #: A job whose server was lost before it started waits this long for a server (that one or another) to be
    #: up again before it fails.
    server_wait: float = 120.0
    stream: Mapping[str, Any] = field(default_factory=dict)


class Engine:
    def __init__(self, pool: ServerPool, options: EngineOptions | None = None) -> None:
        self.pool = pool
        self.options = options or EngineOptions()
        self.runs: dict[str, JobRun] = {}
        #: Background checks of results already handed over (held here so they are not lost mid-way).
        self._confirmations: set[asyncio.Task[Confirmation]] = set()

    def start(
        self,
        spec: JobSpec,
        *,
        on_submit: SubmitHook | None = None,
        attach_to: str | None = None,
        was_running: bool = False,
        lease: Lease | None = None,
        requeue: Requeue | None = None,
    ) -> JobRun:
        """A run of ``spec``. ``attach_to`` (a server url) follows a prompt submitted before a restart of the
        bot instead of submitting it; ``was_running`` says whether it had been seen running then. ``lease`` is a
        slot already taken for this job (``ServerPool.try_acquire``), used by its first attempt; the run gives
        it back when it ends, so the run must be iterated. ``requeue``: how a resubmission gets its slot."""
        run = JobRun(
            self,
            spec,
            on_submit=on_submit,
            attach_to=attach_to,
            was_running=was_running,
            lease=lease,
            requeue=requeue,
        )
        self.runs[spec.job_id] = run
        return run

    async def close(self) -> None:
        """Stop the background checks still running (the results they check were handed over already)."""
        tasks = list(self._confirmations)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _keep(self, task: asyncio.Task[Confirmation]) -> None:
        if not task.done():
            self._confirmations.add(task)
            task.add_done_callback(self._confirmations.discard)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a run of this engine by job id; False when there is no such live run."""
        run = self.runs.get(job_id)
        if run is None or run.finished:
            return False
        await run.cancel()
        return True


class JobRun:
    def __init__(
        self,
        engine: Engine,
        spec: JobSpec,
        *,
        on_submit: SubmitHook | None,
        attach_to: str | None,
        was_running: bool,
        lease: Lease | None = None,
        requeue: Requeue | None = None,
    ) -> None:
        self.engine = engine
        self._requeue = requeue
        self.spec = spec
        self.tracker = ProgressTracker(spec.prompt_id, spec.graph, frame_nodes=spec.frame_nodes)
        self.result: JobResult | None = None
        #: The background check of a result taken from the websocket (None when the result waited for the
        #: server's record, or there is no result).
        self.confirmation: asyncio.Task[Confirmation] | None = None
        #: The server the job is on (or was last on).
        self.server: str | None = attach_to
        self.submissions = 0
        self._resubmitting = False
        self._on_submit = on_submit
        self._attach = attach_to is not None
        self._was_running = was_running
        self._cancel = asyncio.Event()
        self._stream: JobStream | None = None
        self._lease: Lease | None = None
        self._given_lease = lease
        self._iterated = False

    @property
    def snapshot(self) -> Snapshot:
        return self.tracker.snapshot

    @property
    def finished(self) -> bool:
        return self.result is not None

    async def cancel(self) -> None:
        """Ask for this job to stop; the iteration then ends with a cancelled snapshot (or done, if it won)."""
        self._cancel.set()
        stream, lease = self._stream, self._lease
        if stream is None or lease is None or not stream.submitted:
            return  # not sent yet: the run itself notices the flag before and right after sending
        stream.cancel_requested = True
        try:
            await cancel_remote(lease.http, stream.prompt_id, confirm_timeout=2.0)
        except ComfyError as exc:
            log.warning("job %s: cancel at %s failed: %s", self.spec.job_id, lease.server.url, exc)
        stream.nudge()

    def __aiter__(self) -> AsyncIterator[Snapshot]:
        if self._iterated:
            raise RuntimeError("a JobRun can be iterated once")
        self._iterated = True
        return self._run()

    async def _run(self) -> AsyncIterator[Snapshot]:
        current_job.set(self.spec.job_id)  # the iterating task's log lines carry the job id
        try:
            yield self.tracker.snapshot
            resubmits = 0
            while True:
                try:
                    async for snapshot in self._attempt():
                        yield snapshot
                    break
                except JobLostError as exc:
                    may_retry = not exc.started or self.engine.options.resubmit_running
                    if self._cancel.is_set() or not may_retry or resubmits >= self.engine.options.max_resubmits:
                        log.warning("job %s lost on %s: %s", self.spec.job_id, self.server, exc)
                        yield self._fail(exc)
                        break
                    resubmits += 1
                    self._attach = False
                    self._resubmitting = True
                    log.warning("job %s lost on %s (%s); submitting it again", self.spec.job_id, self.server, exc)
                    yield self.tracker.mark_queued(None, self._now())
                except DiscomfyError as exc:
                    log.warning("job %s failed: %s", self.spec.job_id, exc)
                    yield self._fail(exc)
                    break
        finally:
            if self._lease is not None:
                self._lease.release()
                self._lease = None
            if self._given_lease is not None:
                self._given_lease.release()
                self._given_lease = None
            if self.result is None:
                self.result = JobResult(self.tracker.snapshot)
            self.engine.runs.pop(self.spec.job_id, None)

    async def _attempt(self) -> AsyncIterator[Snapshot]:
        lease = await self._acquire()
        if lease is None:
            yield self.tracker.mark_cancelled(self._now())
            return
        self._lease, self.server = lease, lease.server.url
        stream: JobStream | None = None
        try:
            if not self._attach:
                await self._upload(lease)
                if self._cancel.is_set():
                    yield self.tracker.mark_cancelled(self._now())
                    return
                if self._on_submit is not None:
                    await self._on_submit(lease.server.url, self.spec.prompt_id)
            stream = JobStream(
                lease.http,
                prompt_id=self.spec.prompt_id,
                client_id=self.spec.job_id,
                graph=self.spec.graph,
                tracker=self.tracker,
                extra_data={"preview_method": self.engine.options.preview_method} if self.spec.preview else None,
                cancel_event=self._cancel,
                **self.engine.options.stream,
            )
            stream.started = self._attach and self._was_running
            if self._on_submit is not None:
                hook, server = self._on_submit, lease.server.url

                async def renamed(server_id: str) -> None:
                    # An older ComfyUI named the job itself: record that id (a restart asks about it).
                    await hook(server, server_id)

                stream.on_renamed = renamed
            self._stream = stream
            submit = not self._attach
            self.submissions += int(submit)
            async for snapshot in stream.run(submit=submit):
                if stream.submitted and self._cancel.is_set() and not stream.cancel_requested:
                    # Cancelled while the submission was in flight: now that it has landed, stop it.
                    await self.cancel()
                yield snapshot
            self.result = stream.result
            if stream.confirmation is not None:
                self.confirmation = stream.confirmation
                self.engine._keep(stream.confirmation)
        except ComfyUnreachableError as exc:
            if self._attach or (stream is not None and stream.submitted):
                raise
            # Nothing reached the server: it went down before the pool noticed. Try the job elsewhere.
            self.engine.pool.mark_down(lease.server.url, str(exc))
            raise JobLostError(f"{lease.server.url} could not be reached: {exc}", started=False) from exc
        finally:
            self._stream = None
            self._lease = None
            lease.release()

    async def _acquire(self) -> Lease | None:
        """A server slot, or None when the job was cancelled while waiting for one."""
        if self._attach and self.server is not None:
            return self.engine.pool.lease_on(self.server)
        given, self._given_lease = self._given_lease, None
        if given is not None:
            if self._cancel.is_set():
                given.release()
                return None
            return given
        options = self.engine.options
        if self._resubmitting and self._requeue is not None:
            acquiring = asyncio.ensure_future(self._requeue(self.spec))
        else:
            acquiring = asyncio.ensure_future(
                self.engine.pool.acquire(
                    self.spec.needed_models,
                    wait=options.slot_wait,
                    wait_for_health=options.server_wait if self._resubmitting else 0.0,
                )
            )
        cancelled = asyncio.ensure_future(self._cancel.wait())
        try:
            await asyncio.wait({acquiring, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancelled.cancel()
        if acquiring.done():
            lease = acquiring.result()
            if not self._cancel.is_set():
                return lease
            lease.release()
            return None
        acquiring.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await acquiring
        return None

    async def _upload(self, lease: Lease) -> None:
        for image in self.spec.inputs:
            stored = await lease.http.upload_image(image.data, image.name, subfolder=UPLOAD_SUBFOLDER)
            if stored != image.load_image_value:
                raise ComfyError(f"{lease.server.url} stored {image.name} as {stored!r}")

    def _fail(self, exc: DiscomfyError) -> Snapshot:
        snapshot = self.tracker.snapshot
        if snapshot.phase is Phase.DONE:
            # ComfyUI finished, but its files could not be had (too large, refused): the run ends failed with the
            # error's kind, not "done with no files" (the tracker keeps a terminal snapshot as it is).
            failed = dataclasses.replace(
                snapshot,
                phase=Phase.FAILED,
                failure=exc.failure,
                error=exc.shown_detail,
                revision=snapshot.revision + 1,
            )
            self.result = JobResult(failed)
            return failed
        return self.tracker.mark_failed(exc.shown_detail, self._now(), exc.failure)

    def _now(self) -> float:
        return time.monotonic()
