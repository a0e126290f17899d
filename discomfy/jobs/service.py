"""The job service: between the bot and the engine. Admits jobs, queues them fairly, runs them, survives restarts.

How it works:
- ``runnable(kind, name)`` is the workflow that will run: the named one (the kind's default when none is named),
  or the first of its fallbacks whose models a healthy server has; a ``UserError`` naming the missing model files
  when none has them. Forms and commands ask it once, up front, and name it in their request.
- ``check(request, pictures=n)`` is the one check of what a request asks, against ``runnable``'s workflow:
  options it does not take, the prompt's length, pictures it needs or refuses, and ``bind``
  against the manifest's bounds (a ``BadInputError`` names the option). The bot calls it before answering
  Discord (a refusal is an ephemeral first response); ``submit`` calls it again with the real pictures.
- ``submit``: the caps (``Limits.admit_job`` against ``store.counts()``), ``check`` against the workflow that
  will run, then the row is written in state ``waiting`` with every bound value, the
  chosen seed included, so binding the stored params again gives the same graph; with them, whether each
  optional stage of the workflow runs (``stages``: on when a healthy server has its models too). Only then is
  the job pushed to our ``FairQueue``.
- The workflow is chosen again at dispatch (``rechoice.py``): a waiting job runs the first of its workflow's
  fallback chain whose models a healthy server has *then* (a job naming Wan 2.2, submitted while every server
  was down, runs LTX-Video when the server that returns has only LTX-Video's models), with its options carried
  over; the row gets that workflow, its params and seed in the ``submitting`` write, before the POST, and the
  job's messages name it. While no server is healthy the job keeps its own workflow and waits.
- The dispatcher pops a job only when the pool has a free slot for that job's models (``pick_server``) and
  takes the slot in the same step (``ServerPool.try_acquire``), so the order is decided by our fair queue, never
  by the pool's FIFO. It wakes on submit, on cancel, on a job's end, and polls (``poll_interval``) for pool
  changes. Each job then runs as its own task (``runner.JobRunner``); waiting jobs hear their place in our queue
  through the observer whenever it changes. A job whose server lost it before it started goes back into this
  same queue (the engine's ``requeue``), so a resubmission waits its fair turn like any other job.
- ``start`` reattaches every active row, oldest first: ``waiting`` → our queue again; ``submitting`` / ``queued``
  / ``running`` → ``engine.start(attach_to=row.server_url)``, which asks the server about our prompt_id and, if
  the server lost it, submits it again (not started) or reports it lost (started); ``delivering`` → the stored
  outputs are delivered again (fetched from the server again when none were stored).
- ``cancel`` is checked here (owner or Manage Messages): a waiting job leaves our queue; one at a server is
  cancelled through the engine, and the final row is returned once the engine confirmed (bounded wait).

Never: cancel anything at ComfyUI on ``close`` (a shutdown; the next ``start`` reattaches), send a job whose
row was not written first, or let a caller see anything but a ``UserError`` for a refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from discomfy.comfy.engine import UPLOAD_SUBFOLDER, Engine, InputImage, JobSpec
from discomfy.comfy.pool import Lease, NoServerError, missing_models, pick_server
from discomfy.comfy.progress import Snapshot
from discomfy.config import Settings
from discomfy.errors import BadInputError, UserError, reference_id
from discomfy.jobs.admission import Actor, Limits
from discomfy.jobs.fairqueue import FairQueue
from discomfy.jobs.rechoice import Carried, best_workflow, carried_params
from discomfy.jobs.runner import (
    JobObserver,
    JobRunner,
    OutputSink,
    RunnerDeps,
    ServiceOptions,
    job_spec,
    params_with_inputs,
    recorded_params,
    refuse_resubmit,
    waiting_snapshot,
)
from discomfy.jobs.state import (
    AT_SERVER,
    ChannelId,
    GuildId,
    InteractionRef,
    Job,
    JobAction,
    JobId,
    JobKind,
    JobState,
    MessageId,
    UserId,
    amend,
    new_job_id,
)
from discomfy.jobs.store import JobStore
from discomfy.media.join import last_frame
from discomfy.media.picture import Picture
from discomfy.outcome import Failure
from discomfy.workflows import BoundGraph, Kind, ParamType, Registry, Workflow, bind
from discomfy.workflows.graph import inputs_of

__all__ = ["JobObserver", "JobRequest", "JobService", "OutputSink", "ServiceOptions"]

log = logging.getLogger(__name__)

#: Extend needs the video itself (to join the new part to it), not only the copy on Discord.
EXTEND_SOURCE_GONE = (
    "That video's file is no longer kept on the bot's server (only the copy on Discord is left), so it can't be "
    "extended. Press Reroll on it for a new video, or Extend a newer one."
)

#: Rebuilds a job's input images after a restart (from the output store or the Discord attachment).
InputLoader = Callable[[Job], Awaitable[tuple[InputImage, ...]]]


@dataclass(frozen=True)
class JobRequest:
    """What a command or a button asks for."""

    owner_id: int
    guild_id: int | None
    channel_id: int
    interaction: InteractionRef | None
    #: None: the default workflow of ``kind``.
    workflow: str | None
    kind: Kind
    action: JobAction
    params: Mapping[str, Any]
    parent_id: str | None = None
    source_index: int | None = None
    #: Input pictures. Image options left empty are filled from these, in order.
    inputs: tuple[Picture, ...] = ()
    #: For an action on a result: the job's progress message is posted as a reply to this message.
    reply_to: int | None = None


@dataclass
class _Waiting:
    """A job in our own queue, with what it needs to start. ``granted`` is set for a job the engine put back
    (its server lost it before it started): the dispatcher hands the slot to that waiting run."""

    job: Job
    spec: JobSpec
    announced: int | None = None
    granted: asyncio.Future[Lease] | None = field(default=None, repr=False)
    #: The job moved to another workflow of its chain (``rechoice.py``), bound once and kept while it waits.
    moved: tuple[Job, JobSpec] | None = field(default=None, repr=False)


def input_images(pictures: tuple[Picture, ...]) -> tuple[InputImage, ...]:
    """The pictures as ComfyUI uploads, named by content (the same picture is stored once per server)."""
    return tuple(InputImage.from_bytes(p.data, p.extension) for p in pictures)


class JobService:
    def __init__(
        self,
        *,
        store: JobStore,
        engine: Engine,
        registry: Registry,
        outputs: OutputSink,
        observer: JobObserver,
        limits: Limits,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        options: ServiceOptions | None = None,
        load_inputs: InputLoader | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.registry = registry
        self.outputs = outputs
        self.observer = observer
        self.limits = limits
        self.settings = settings
        self.clock = clock
        self.options = options or ServiceOptions()
        self.load_inputs = load_inputs or self._source_inputs
        self._queue: FairQueue[Job] = FairQueue(self.options.weights)
        self._waiting: dict[str, _Waiting] = {}
        self._runners: dict[str, JobRunner] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake_event = asyncio.Event()
        self._queue_changed = False
        #: Whether any server was up when last looked at (waiting jobs are redrawn when that changes).
        self._any_server_up: bool | None = None
        self._admit = asyncio.Lock()
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False
        self._deps = RunnerDeps(store, engine, outputs, observer, self.options, self._wake)

    # -- life ------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Reattach every active job (oldest first), then start dispatching."""
        done: Counter[str] = Counter()
        for job in await self.store.active():
            if job.id in self._waiting or job.id in self._runners:
                continue
            try:
                done[await self._reattach(job)] += 1
            except Exception as exc:
                await self._fail_at_start(job, exc)
                done["failed"] += 1
        if done:
            log.info("job service: on start, %s", ", ".join(f"{n} {what}" for what, n in sorted(done.items())))
        self._queue_changed = True
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="job-dispatcher")

    async def close(self) -> None:
        """Stop dispatching and following. Jobs at ComfyUI keep running there; the next ``start`` reattaches."""
        self._closing = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for waiting in self._waiting.values():
            if waiting.granted is not None and not waiting.granted.done():
                waiting.granted.cancel()

    # -- the bot's calls -------------------------------------------------------------------------------------

    def check(self, request: JobRequest, *, pictures: int | None = None) -> Workflow:
        """What ``request`` asks, checked against the workflow that will run (``runnable``: the named one or the
        kind's default, or the first of its fallbacks a healthy server has the models of), without I/O;
        ``pictures`` (default: the request's) says how many input pictures will come. Returns that workflow;
        refusals are ``UserError``s (``BadInputError`` for what was asked)."""
        return self._check(request, self._runnable_workflow(request), pictures)

    def runnable(self, kind: Kind, workflow: str | None = None, *, guild_id: int | None = None) -> Workflow:
        """The workflow a job of ``kind`` naming ``workflow`` (None: the kind's default) would run now for a member
        of ``guild_id`` (None: a DM; another server's upload does not exist there): the first of its fallback
        chain whose models a healthy server has (the named one itself while every server is down: the job waits
        for one). A ``UserError`` naming the missing model files when no healthy server has the models of any of
        them. Forms and commands ask this once, up front, and name the result in their request, so what is
        shown, checked and run is one workflow."""
        registry = self.registry.for_guild(guild_id)
        named = self._named_workflow(registry, kind, workflow)
        healthy = [s for s in self.engine.pool.servers if s.healthy]
        if not healthy:
            return named
        chain = registry.with_fallbacks(named.name)
        for candidate in chain:
            needed = registry.needed_models(candidate.name)
            if any(needed <= s.models for s in healthy):
                return candidate
        lacking = "; ".join(
            f"{w.name} lacks {', '.join(missing_models(healthy, registry.needed_models(w.name)))}" for w in chain
        )
        raise UserError(
            f"No image server has the models the {named.name} workflow needs right now ({lacking}); tell an admin."
        )

    def stages(self, workflow: Workflow) -> dict[str, bool]:
        """Which optional stages of ``workflow`` (``[stages.NAME]``, e.g. frame interpolation) a job runs: those
        whose models a healthy server has along with the workflow's own (none while every server is down). The
        choice is bound and recorded with the job, so it routes to such a server and a restart binds the same."""
        healthy = [s for s in self.engine.pool.servers if s.healthy]
        return {
            name: any(self.registry.needed_models(workflow.name, {name}) <= s.models for s in healthy)
            for name in workflow.stages
        }

    def check_extend(self, request: JobRequest, source_frames: int) -> Workflow:
        """Extend: ``check`` of the request (the video's own workflow, or the one that will run for it), and that
        workflow continues videos (its manifest's ``extend_max_frames``) up to a length the video with its new
        part stays within: ``source_frames`` + the part's frames − 1 (the part's first frame is the video's
        last, kept once). ``UserError``s say what to do instead."""
        workflow = self.check(request, pictures=1)
        most = workflow.extend_max_frames
        if most is None:
            raise UserError(f"The {workflow.name} workflow can't continue a video; press Reroll for a new one.")
        frames = request.params.get("frames")
        if not isinstance(frames, int) or isinstance(frames, bool):
            default = workflow.params["frames"].default if "frames" in workflow.params else 1
            frames = default if isinstance(default, int) and not isinstance(default, bool) else 1
        for name, on in self._extend_stages(workflow, request).items():
            stage = workflow.stages[name]
            if on and stage.multiplier is not None:  # e.g. interpolation: (n - 1) × m + 1 frames come out
                multiplier = inputs_of(workflow.graph, stage.multiplier.node).get(stage.multiplier.input)
                if isinstance(multiplier, int) and not isinstance(multiplier, bool) and multiplier >= 2:
                    frames = (frames - 1) * multiplier + 1
        total = source_frames + frames - 1
        if total > most:
            raise UserError(
                f"This video has {source_frames} frames; extending it by {frames - 1} would make {total}, over the "
                f"{most} frames the {workflow.name} workflow allows in all. Reroll it, or animate a new picture."
            )
        return workflow

    def _check(self, request: JobRequest, workflow: Workflow, pictures: int | None) -> Workflow:
        # A stage's recorded choice (a rerun's params) is not an option: ``stages`` decides it again at submit.
        given = {k: v for k, v in request.params.items() if v is not None and k not in workflow.stages}
        unknown = sorted(k for k in given if k not in workflow.params)
        if unknown:
            raise BadInputError(
                f"The {workflow.name} workflow has no '{unknown[0]}' option; it takes: {', '.join(workflow.params)}."
            )
        prompt, most = given.get("prompt"), self.settings.limits.max_prompt_length
        if isinstance(prompt, str) and len(prompt) > most:
            raise BadInputError(f"The prompt is {len(prompt)} characters; the most is {most}.")
        count = len(request.inputs) if pictures is None else pictures
        images = [p for p in workflow.params.values() if p.type is ParamType.IMAGE]
        if count and not images:
            raise BadInputError(f"The {workflow.name} workflow takes no picture; leave the image option empty.")
        empty = [p for p in images if not given.get(p.name)]
        if any(p.required for p in empty[count:]):
            raise BadInputError(f"The {workflow.name} workflow needs a picture: add one with the image option.")
        stand_ins = tuple(Picture.of(b"placeholder %d" % n, "png") for n in range(count))
        self._bind(workflow, given, request.inputs or stand_ins)
        return workflow

    def _bind(self, workflow: Workflow, params: Mapping[str, Any], pictures: tuple[Picture, ...]) -> BoundGraph:
        return bind(workflow, params_with_inputs(workflow, params, input_images(pictures)), self.settings.models)

    async def submit(self, request: JobRequest, actor: Actor) -> Job:
        """Admit, bind and record a job, then queue it. Refusals are ``UserError``s (``BadInputError``, …)."""
        if self._closing:
            raise UserError("I'm restarting right now; please try again in a minute.")
        async with self._admit:  # counts and the new row together, or two requests could both pass the cap
            now = self.clock()
            self.limits.admit_job(actor, await self.store.counts(), now)
            workflow = self._runnable_workflow(request)
            self._check(request, workflow, None)
            params = {k: v for k, v in request.params.items() if v is not None and k not in workflow.stages}
            if request.action is JobAction.EXTEND:
                params |= self._extend_stages(workflow, request)
            else:
                params |= self.stages(workflow)
            bound = self._bind(workflow, params, request.inputs)
            seed = bound.values.get("seed")
            job = Job(
                id=new_job_id(),
                owner_id=UserId(request.owner_id),
                channel_id=ChannelId(request.channel_id),
                workflow=workflow.name,
                kind=JobKind(workflow.kind.value),
                action=request.action,
                created_at=now,
                guild_id=None if request.guild_id is None else GuildId(request.guild_id),
                interaction=request.interaction,
                params=recorded_params(bound),
                seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                parent_id=None if request.parent_id is None else JobId(request.parent_id),
                source_index=request.source_index,
                reply_to=None if request.reply_to is None else MessageId(request.reply_to),
            )
            if job.parent_id is not None and job.source_index is not None:
                # The source must not be evicted between reading it and our row existing (outputs.py).
                async with self.outputs.claim_source(job.parent_id, job.source_index) as source:
                    if source is None:
                        raise UserError("I can't find that result any more; it may have been deleted.")
                    if job.action is JobAction.EXTEND and not source.on_disk:
                        raise UserError(EXTEND_SOURCE_GONE)
                    await self.store.create(job)
            else:
                await self.store.create(job)
        spec = job_spec(job, bound, input_images(request.inputs), preview=self.options.previews)
        self._enqueue(job, spec)
        log.info("job %s: %s by %s with %s, waiting", job.id, job.action, job.owner_id, job.workflow)
        return job

    async def cancel(self, job_id: str, actor: Actor) -> Job:
        """Cancel for its owner or a moderator; returns the row as it ends (unchanged if already finished)."""
        job = await self.store.get(job_id)
        self.limits.check_owner_or_moderator(actor, job.owner_id)
        if job.terminal:
            return job
        waiting = self._waiting.pop(job_id, None)
        if waiting is not None:
            self._queue.remove(JobId(job_id))
            self._queue_changed = True
            self._wake()
            job = await self.store.transition(job_id, JobState.CANCELLED)
            log.info("job %s: cancelled while waiting in our queue", job_id)
            await self._notify_ended(job)
            return job
        runner, task = self._runners.get(job_id), self._tasks.get(job_id)
        if runner is not None and task is not None:
            if runner.job.state is JobState.DELIVERING:
                raise UserError("Too late to cancel: the result is already on its way.")
            if runner.run is not None:
                log.info("job %s: cancel asked by %s", job_id, actor.user_id)
                await runner.run.cancel()
                await asyncio.wait({task}, timeout=self.options.cancel_wait)
            return await self.store.get(job_id)
        if job.state is JobState.DELIVERING:
            raise UserError("Too late to cancel: the result is already on its way.")
        raise UserError("I can't cancel this job right now; please try again in a moment.")

    def position(self, job_id: str) -> int | None:
        """The job's place in our own queue (1 = next), or None when it is not waiting there."""
        return self._queue.position_of(JobId(job_id))

    # -- workflows -------------------------------------------------------------------------------------------

    @staticmethod
    def _named_workflow(registry: Registry, kind: Kind, workflow: str | None) -> Workflow:
        """The workflow named (of ``kind``), or the kind's default, in ``registry`` (one server's view)."""
        if workflow is None:
            default = registry.default(kind)
            if default is None:
                raise UserError(f"No {kind.value} workflow is installed; ask an admin to add one.")
            return default
        names = [w.name for w in registry.of_kind(kind)]
        if workflow not in names:
            # Workflow names are plain identifiers: anything else is shown as "?" (no markdown, no mentions).
            shown = re.sub(r"[^A-Za-z0-9_.-]", "?", workflow[:60])
            choices = ", ".join(names) or "none installed"
            raise BadInputError(f"There is no {kind.value} workflow called '{shown}'. Pick one of: {choices}.")
        return registry.get(workflow)

    def _runnable_workflow(self, request: JobRequest) -> Workflow:
        """The named workflow, or its fallback when no healthy server has its models (``runnable``), in the
        request's guild's view. An Extend runs the video's own workflow with its own stages, never a fallback:
        another model, size or frame rate would not continue the video (``_extend_stages``)."""
        if request.action is JobAction.EXTEND:
            registry = self.registry.for_guild(request.guild_id)
            workflow = self._named_workflow(registry, request.kind, request.workflow)
            self._extend_stages(workflow, request)
            return workflow
        return self.runnable(request.kind, request.workflow, guild_id=request.guild_id)

    def _extend_stages(self, workflow: Workflow, request: JobRequest) -> dict[str, bool]:
        """The optional stages of an Extend: as the video had them (its recorded values), so the new part has its
        frame rate. A ``UserError`` when healthy servers are up but none has the models for that."""
        stages = {name: request.params.get(name) is True for name in workflow.stages}
        needed = self.registry.needed_models(workflow.name, {n for n, on in stages.items() if on})
        healthy = [s for s in self.engine.pool.servers if s.healthy]
        if healthy and not any(needed <= s.models for s in healthy):
            missing = ", ".join(missing_models(healthy, needed))
            raise UserError(
                f"No server can continue this video right now: it was made with {workflow.name}, which needs "
                f"{missing} there. Try again later, or tell an admin."
            )
        return stages

    async def _respec(self, job: Job) -> JobSpec:
        """The job's graph again, from its stored params (the seed is among them, so it is the same graph)."""
        bound = bind(self.registry.get(job.workflow), job.params, self.settings.models)
        return job_spec(job, bound, await self.load_inputs(job), prompt_id=job.prompt_id, preview=self.options.previews)

    async def _source_inputs(self, job: Job) -> tuple[InputImage, ...]:
        """The default input loader after a restart: a job made from a stored output reads it back. Other
        inputs are not needed to follow a prompt, and ComfyUI keeps uploaded files in its input folder."""
        if job.parent_id is None or job.source_index is None:
            return ()
        source = [o for o in await self.store.outputs(job.parent_id) if o.index == job.source_index]
        data = await self.outputs.read(source[0]) if source else None
        if data is None:
            return ()
        if job.action is JobAction.EXTEND:  # the input is the video's last frame, the same PNG every time
            data = (await asyncio.to_thread(last_frame, data)).last_png
        names = sorted(v for v in job.params.values() if isinstance(v, str) and v.startswith(f"{UPLOAD_SUBFOLDER}/"))
        for name in names:
            image = InputImage.from_bytes(data, name.rsplit(".", 1)[-1])
            if image.load_image_value == name:
                return (image,)
        if job.action is JobAction.EXTEND and len(names) == 1:
            # A newer PyAV or Pillow may write the last frame's PNG with other bytes: it is the same picture, sent
            # under the name the job's graph already reads.
            return (InputImage(names[0].removeprefix(f"{UPLOAD_SUBFOLDER}/"), data),)
        return ()

    # -- dispatch --------------------------------------------------------------------------------------------

    def _enqueue(self, job: Job, spec: JobSpec, granted: asyncio.Future[Lease] | None = None) -> None:
        self._waiting[job.id] = _Waiting(job, spec, granted=granted)
        self._queue.push(job)
        self._queue_changed = True
        self._wake()

    def _wake(self) -> None:
        self._wake_event.set()

    async def _dispatch_loop(self) -> None:
        while True:
            self._wake_event.clear()
            try:
                self._dispatch_ready()
                self._notice_health()
                if self._queue_changed:
                    self._queue_changed = False
                    self._announce_positions()
            except Exception:
                log.exception("job dispatcher: unexpected error; going on")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_event.wait(), self.options.poll_interval)

    def _dispatch_ready(self) -> None:
        pool = self.engine.pool
        models: dict[str, frozenset[str]] = {}

        def models_of(name: str) -> frozenset[str]:
            if name not in models:
                models[name] = self.registry.needed_models(name)
            return models[name]

        def can_run(job: Job) -> bool:
            waiting = self._waiting[job.id]
            if waiting.granted is None:  # a resubmission keeps the graph its run holds
                waiting.moved = self._rechoose(
                    waiting, best_workflow(self.registry, job.workflow, pool.servers, models_of)
                )
            spec = waiting.moved[1] if waiting.moved is not None else waiting.spec
            return pick_server(pool.servers, spec.needed_models, pool.capacity) is not None

        while (job := self._queue.pop_next(can_run)) is not None:
            waiting = self._waiting.pop(job.id)
            self._queue_changed = True
            rechosen: dict[str, Any] | None = None
            if waiting.moved is not None:
                waiting.job, waiting.spec = waiting.moved
                rechosen = {"workflow": waiting.job.workflow, "params": waiting.job.params, "seed": waiting.job.seed}
            lease = pool.try_acquire(waiting.spec.needed_models)  # no await since can_run: the slot is there
            if waiting.granted is None:
                self._launch(waiting.job, waiting.spec, lease=lease, rechosen=rechosen)
            elif lease is not None and not waiting.granted.done():
                waiting.granted.set_result(lease)  # a resubmission: its run is waiting for this slot
            elif lease is not None:
                lease.release()

    def _rechoose(self, waiting: _Waiting, best: Workflow | None) -> tuple[Job, JobSpec] | None:
        """The job moved to ``best`` (``rechoice.best_workflow`` now) with the optional stages the healthy servers
        can run now (``stages``), or None to run as it was bound: ``best`` is its own workflow with the same
        stages, or None (no healthy server has any of its chain's models: it waits), or binding the carried
        options fails. Bound once per target while the job waits (``waiting.moved``)."""
        job = waiting.job
        if best is None or job.action is JobAction.EXTEND:  # an Extend continues its video's own workflow
            return None
        stages = self.stages(best)

        def runs(candidate: Job) -> bool:
            return candidate.workflow == best.name and all(candidate.params.get(n) is on for n, on in stages.items())

        if runs(job):
            return None
        if waiting.moved is not None and runs(waiting.moved[0]):
            return waiting.moved
        own = self.registry.find(job.workflow)
        if best.name == job.workflow:  # the same workflow; a stage's models came or went with the servers
            carried = Carried({k: v for k, v in job.params.items() if k not in best.stages}, ())
        else:
            carried = carried_params(own, best, job.params)
        try:
            bound = bind(best, carried.params | stages, self.settings.models)
        except BadInputError as exc:
            log.warning("job %s: cannot move to %s (%s); it waits for %s", job.id, best.name, exc, job.workflow)
            return None
        seed = bound.values.get("seed")
        moved = amend(
            job,
            workflow=best.name,
            params=recorded_params(bound),
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        )
        spec = job_spec(
            moved, bound, waiting.spec.inputs, preview=self.options.previews, prompt_id=waiting.spec.prompt_id
        )
        dropped = [n for n in carried.dropped if own is None or n not in own.stages]
        log.info(
            "job %s: the healthy servers cannot run %s as bound; it runs %s%s%s",
            job.id,
            job.workflow,
            best.name,
            "".join(f", {n} {'on' if on else 'off'}" for n, on in stages.items()),
            f" (left out: {', '.join(dropped)})" if dropped else "",
        )
        return moved, spec

    def _notice_health(self) -> None:
        """When every server goes down (or one comes back), waiting jobs are shown again: their messages say so."""
        any_up = any(server.healthy for server in self.engine.pool.servers)
        if any_up != self._any_server_up:
            self._any_server_up = any_up
            for waiting in self._waiting.values():
                waiting.announced = None
            self._queue_changed = True

    def _announce_positions(self) -> None:
        for place, queued in enumerate(self._queue.order(), start=1):
            waiting = self._waiting.get(queued.id)
            # A resubmission's message is drawn by its run (the engine says it waits to be sent again).
            if waiting is not None and waiting.granted is None and waiting.announced != place:
                waiting.announced = place
                self._show(waiting.job, waiting_snapshot(waiting.job), place)

    def _show(self, job: Job, snapshot: Snapshot, place: int | None) -> None:
        try:
            self.observer.show(job, snapshot, place)
        except Exception:
            log.exception("job %s: the observer failed on a progress update (ignored)", job.id)

    async def _requeue(self, spec: JobSpec) -> Lease:
        """The engine's ``requeue``: a job whose server lost it before it started waits in our queue again and
        gets the next slot the dispatcher gives it. Fails with ``NoServerError`` when no healthy server has its
        models for ``server_wait`` seconds (the engine's option); cancelling the wait takes it out of the queue."""
        job = await self.store.get(spec.job_id)
        granted: asyncio.Future[Lease] = asyncio.get_running_loop().create_future()
        self._enqueue(job, spec, granted)
        log.info("job %s: back in our queue to be sent again", job.id)
        server_wait = self.engine.options.server_wait
        pool = self.engine.pool
        no_server_since: float | None = None
        try:
            while True:
                done, _ = await asyncio.wait({granted}, timeout=self.options.poll_interval)
                if done:
                    return granted.result()
                if any(s.healthy and spec.needed_models <= s.models for s in pool.servers):
                    no_server_since = None
                    continue
                now = time.monotonic()
                no_server_since = no_server_since or now
                if now - no_server_since >= server_wait:
                    raise NoServerError(f"no server with the models came back within {server_wait:.0f} s")
        finally:
            if not granted.done():
                granted.cancel()
            if self._waiting.get(job.id) is not None and self._waiting[job.id].granted is granted:
                del self._waiting[job.id]
                self._queue.remove(JobId(job.id))
                self._queue_changed = True

    def _launch(
        self,
        job: Job,
        spec: JobSpec,
        *,
        lease: Lease | None = None,
        attach_to: str | None = None,
        was_running: bool = False,
        rechosen: Mapping[str, Any] | None = None,
    ) -> None:
        runner = JobRunner(self._deps, job, rechosen=rechosen)
        runner.run = self.engine.start(
            spec,
            on_submit=runner.on_submit,
            lease=lease,
            attach_to=attach_to,
            was_running=was_running,
            requeue=self._requeue,
        )
        self._track(runner, asyncio.create_task(runner.follow(), name=f"job-{job.id}"))

    def _track(self, runner: JobRunner, task: asyncio.Task[None]) -> None:
        job_id = runner.job.id
        self._runners[job_id], self._tasks[job_id] = runner, task

        def forget(_: asyncio.Task[None]) -> None:
            if self._tasks.get(job_id) is task:
                del self._tasks[job_id], self._runners[job_id]
            self._wake()

        task.add_done_callback(forget)

    # -- restart ---------------------------------------------------------------------------------------------

    async def _reattach(self, job: Job) -> str:
        if job.state is JobState.WAITING:
            self._enqueue(job, await self._respec(job))
            log.info("job %s: back in our queue after a restart", job.id)
            return "back in the queue"
        if job.state in AT_SERVER:
            if not (job.server_url and job.prompt_id):
                raise RuntimeError(f"a {job.state} row without a server or prompt_id")
            spec = await self._respec(job)
            self._launch(job, spec, attach_to=job.server_url, was_running=job.state is JobState.RUNNING)
            log.info("job %s: reattached to prompt %s on %s (%s)", job.id, job.prompt_id, job.server_url, job.state)
            return "reattached"
        # delivering: outputs stored (or to fetch again from the finished prompt)
        runner = JobRunner(self._deps, job)
        if not await self.store.outputs(job.id) and job.server_url and job.prompt_id:
            spec = await self._respec(job)
            runner.run = self.engine.start(spec, on_submit=refuse_resubmit, attach_to=job.server_url, was_running=True)
        self._track(runner, asyncio.create_task(runner.redeliver(), name=f"deliver-{job.id}"))
        log.info("job %s: delivering its result again after a restart", job.id)
        return "delivered again"

    async def _fail_at_start(self, job: Job, exc: Exception) -> None:
        ref = reference_id()
        log.error("job %s: could not be resumed after a restart [ref %s]", job.id, ref, exc_info=exc)
        detail = exc.user_message if isinstance(exc, UserError) else ref
        try:
            job = await self.store.transition(job.id, JobState.FAILED, failure=Failure.NOT_RESUMED, error=detail)
        except Exception:
            log.exception("job %s: could not record the failure [ref %s]", job.id, ref)
            return
        await self._notify_ended(job)

    async def _notify_ended(self, job: Job) -> None:
        try:
            await self.observer.ended(job, None)
        except Exception:
            log.exception("job %s: the observer failed on the job's end (ignored)", job.id)
