"""One job on one ComfyUI server: its own websocket, exactly-once submission, live snapshots, outputs in hand.

How it works:
- A socket task keeps ``/ws?clientId=<job's client id>`` open for the job's life and puts raw frames on a
  queue. On a drop it reconnects with backoff (``discomfy.retry``), always *after* the old socket has closed
  (a new socket with the same clientId opened before the old one is gone can be unregistered by the old one's
  cleanup and receive nothing), and marks the gap.
- The main loop decodes frames and feeds the pure ``ProgressTracker``. After any gap, and whenever the socket
  has been silent for ``silence_timeout``, it *reconciles*: it asks the server about our prompt_id
  (``/api/jobs/{id}``, or queue + history on older servers) and tells the tracker what the server knows. So a
  job that finished while the socket was down, or before it ever connected, is still collected.
- Output files are fetched with ``/view`` as soon as an ``executed`` message names them.
- The end, fast: ComfyUI sends ``executed`` for every node with UI output (a cached one too), and history's
  ``outputs`` are exactly those; it writes history just *after* ``execution_success`` (255 ms later in a
  recording of a long run). So when the websocket's account is complete — ``execution_success`` came on a
  socket that was open before the prompt was sent and never dropped since, and every sink of the graph (a node
  no other node reads: where a graph's outputs are) sent ``executed``, naming at least one saved file — the
  result is those files, as soon as their downloads finish: nothing waits for the record. The record is read
  afterwards, in the background (``confirmation``), with the same patience as below.
- The end, otherwise (a gap, a reattach after a restart, an older server that names the job itself or sends no
  ``execution_success``, a sink that sent no ``executed`` — older servers do not resend it for cached nodes,
  nothing saved named): the server's record is authoritative. If reconciliation's answer is what said "done",
  that record is used; else it is read now, retrying while it is not written yet. Whatever was not fetched
  yet is fetched then, retrying until ``fetch_deadline``.
- When the background record disagrees — it names saved files the messages did not (only a server breaking
  the protocol above can), or it is not "done" — the result stands: it was handed over once and is never sent
  again or amended. The difference is logged at WARNING with the file names (they stay on the server) and is
  in ``confirmation``'s ``Confirmation.missed`` for a caller that wants to act on it. A record that cannot be
  read is logged at INFO.
- A submission in doubt (``submit_once`` answers ``None``: the answer to ``POST /prompt`` was lost and the server
  then went away for a while) is followed as submitted: reconciliation asks once the server answers, and only
  its "unknown" (``JobLostError``, not started) has the engine send the prompt again.
- ComfyUI's reconnect race (``server.py``'s websocket handler pops ``sockets[sid]`` in its ``finally`` without
  checking which socket holds it, so a dead old socket noticed late unregisters our new one): the socket stays
  open but hears nothing. So when a silence check finds the job running, the socket is reopened.
- The reconnect backoff starts over whenever a connection succeeds, and also when the server answers HTTP
  again while the socket is down (the socket is retried at once instead of after the rest of a long wait).
- Frames are capped (``MAX_FRAME``) and never flood the event loop: the reader waits while ``MAX_QUEUED``
  frames are still undecoded, and the decoder yields to the loop every ``_YIELD_EVERY`` frames.
- A cancel that arrives before the prompt is sent (while the socket is still connecting) ends the run
  cancelled: nothing is sent.
- When the server no longer knows our prompt (it restarted and lost its queue), the stream ends with
  ``JobLostError``, saying whether the job had started: the engine decides whether to submit it again.

Never: submit without the job's prompt_id being known to the caller first (it is passed in), resend a
submission without asking the server first (``submit_once``), end without a terminal snapshot or an error, or
let the background check delay, change or repeat a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import connect

from discomfy.comfy.events import Event, Executed, ExecutionSuccess
from discomfy.comfy.http import ComfyHTTP
from discomfy.comfy.progress import Phase, ProgressTracker, Snapshot
from discomfy.comfy.protocol import decode
from discomfy.comfy.remote import submit_once
from discomfy.comfy.types import OutputFile, RemoteJob, RemoteStatus
from discomfy.errors import ComfyError, ComfyProtocolError, ComfyUnavailableError
from discomfy.outcome import Failure
from discomfy.retry import Backoff, describe, retry

log = logging.getLogger(__name__)

#: Sent first on every socket so the server sends previews with their node and prompt ids (binary type 4).
FEATURE_FLAGS = json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
#: The largest frame we read. What a real ComfyUI 0.33 sent (measured, ``tests/peers/comfyui/outages.py``): text
#: frames up to 1.4 KiB (an ``executed`` naming 64 saved images: 4.5 KiB), previews up to 53 KiB; previews are
#: shrunk to ``--preview-size`` (512 px by default) as JPEG or PNG, under 1 MiB even as a noisy 512 px PNG.
#: 8 MiB still fits a noisy PNG preview at ``--preview-size 1536`` (~3 bytes a pixel, ~7 MiB) yet bounds what
#: one frame costs us: memory, and a text frame's JSON decoding on the event loop (worst loop lag 14 ms for a
#: 7.9 MiB frame, against 187 ms for a 60 MiB one under the old 64 MiB cap: ``bench/ws_stall.py``). A bigger
#: frame closes the socket (1009); it is reopened and reconciliation covers what was lost.
MAX_FRAME = 8 * 1024 * 1024
#: How long closing our socket waits for the server's close frame (websockets waits 10 s by default): a server
#: that floods us or is gone should not hold a finished job's task for that long.
CLOSE_TIMEOUT = 1.0
#: Undecoded frames we hold before the reader stops reading (TCP then pushes back on the server).
MAX_QUEUED = 256
#: The decoder yields to the event loop after this many frames in a row that were already waiting.
_YIELD_EVERY = 32
_GAP = object()
#: Between reconnects of the job's websocket, and between tries of an output download: up to 0.25 s, 0.5 s, … 5 s.
RECONNECT_BACKOFF = Backoff(base=0.25, cap=5.0)
#: Between reads of the job's record once its last message came (the server writes it right after).
FINAL_RECORD_BACKOFF = Backoff(base=0.02, cap=0.5)


class JobLostError(ComfyUnavailableError):
    """The server no longer knows our prompt (it restarted and lost its queue), or stayed unreachable."""

    user_message = "The image server restarted or went away while working on this, and the job was lost. Try again."
    failure = Failure.LOST

    def __init__(self, message: str, *, started: bool) -> None:
        super().__init__(message)
        #: Had the job begun running? A job lost before it started can safely be submitted again.
        self.started = started


@dataclass(frozen=True)
class _Dropped:
    """Queued after the last frame of socket number ``serial``: whatever the server sent next is lost."""

    serial: int


@dataclass(frozen=True)
class Confirmation:
    """The server's record of a job whose result was taken from its websocket messages."""

    #: The record (None when it could not be read within the deadline).
    record: RemoteJob | None
    #: Saved files the record names and the messages did not (not in the result; still on the server).
    missed: tuple[OutputFile, ...] = ()

    @property
    def agrees(self) -> bool:
        return self.record is not None and self.record.status is RemoteStatus.DONE and not self.missed


@dataclass(frozen=True)
class FetchedFile:
    output: OutputFile
    data: bytes


@dataclass(frozen=True)
class JobResult:
    snapshot: Snapshot
    files: tuple[FetchedFile, ...] = ()

    @property
    def phase(self) -> Phase:
        return self.snapshot.phase


def ws_url(base_url: str, client_id: str) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", f"clientId={client_id}", ""))


class _NotRecordedYet(Exception):
    """The server's record of a finished job is not written yet (worth another look, not an error)."""


class JobStream:
    """Follows one prompt on one server. ``run()`` yields snapshots; afterwards ``result`` holds the outcome."""

    def __init__(
        self,
        http: ComfyHTTP,
        *,
        prompt_id: str,
        client_id: str,
        graph: Mapping[str, Any],
        tracker: ProgressTracker,
        extra_data: Mapping[str, Any] | None = None,
        silence_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        unreachable_timeout: float = 120.0,
        fetch_deadline: float = 120.0,
        confirm_in_background: bool = True,
        clock: Callable[[], float] = time.monotonic,
        backoff: Backoff = RECONNECT_BACKOFF,
        cancel_event: asyncio.Event | None = None,
    ) -> None:
        self.http = http
        self.prompt_id = prompt_id
        self.client_id = client_id
        self.graph = graph
        self.tracker = tracker
        self.extra_data = extra_data
        self.silence_timeout = silence_timeout
        self.connect_timeout = connect_timeout
        self.unreachable_timeout = unreachable_timeout
        self.fetch_deadline = fetch_deadline
        #: False: every result waits for the server's record, as before issue 10 (``bench/result_latency.py``).
        self.confirm_in_background = confirm_in_background
        self.clock = clock
        self.backoff = backoff
        #: Set by the caller to cancel: before the prompt is sent, nothing is sent (see ``run``).
        self.cancel_event = cancel_event
        self.result: JobResult | None = None
        #: The background check of a result taken from the websocket (see the module doc); None otherwise.
        self.confirmation: asyncio.Task[Confirmation] | None = None
        self.reconnects = 0
        #: Sockets closed by us because a silence check found the job running (ComfyUI's reconnect race).
        self.reopens = 0
        #: The prompt's answer was lost and the server could not be asked: followed as submitted.
        self.in_doubt = False
        #: Set once the server told us (by events or by its queue) that our job runs.
        self.started = False
        #: Set by the engine when a cancel was sent: the server forgetting the prompt then means "cancelled".
        self.cancel_requested = False
        #: Awaited with the server's id when an older server ignored ours and named the job itself.
        self.on_renamed: Callable[[str], Awaitable[None]] | None = None
        self._frames: asyncio.Queue[object] = asyncio.Queue()
        self._connected = asyncio.Event()
        #: Set when the server answered HTTP while the socket was down: the reconnect wait starts over.
        self._answered = asyncio.Event()
        #: Set while fewer than ``MAX_QUEUED`` frames wait to be decoded.
        self._room = asyncio.Event()
        self._room.set()
        self._ws: Any = None
        self._submitted = False
        self._unreachable_since: float | None = None
        #: While reconciling fails: the waits before the next try (a new schedule after each success).
        self._reconcile_waits: Iterator[float] | None = None
        self._fetches: dict[OutputFile, asyncio.Task[bytes]] = {}
        #: Which socket is open (counts connections), and the one that was open when the prompt was sent.
        self._serial = 0
        self._submit_serial: int | None = None
        #: Every message for our prompt since it was sent reached us (same socket, no drop, no rename).
        self._unbroken = False
        #: Nodes (and the graph nodes they stand for) an ``executed`` of our prompt named.
        self._named: set[str] = set()
        #: The record reconciliation read when it found the job finished.
        self._record: RemoteJob | None = None
        self._ending: asyncio.Task[tuple[FetchedFile, ...]] | None = None

    @property
    def submitted(self) -> bool:
        """The server has (or had) our prompt: submission landed, or we reattached to it."""
        return self._submitted

    def nudge(self) -> None:
        """Ask the server about the job now (after a cancel, say) instead of waiting for news."""
        self._frames.put_nowait(_GAP)

    async def run(self, *, submit: bool = True) -> AsyncIterator[Snapshot]:
        """Yields snapshots until the job is over; then ``self.result`` holds the last one and the files.

        ``submit=False`` reattaches to a prompt submitted earlier (after a restart of the bot).
        Raises ``JobLostError`` when the server lost the prompt, ``PromptRejectedError`` when it refused it.
        """
        socket = asyncio.create_task(self._socket_loop(), name=f"comfy-ws-{self.client_id}")
        try:
            # Submit only once our socket is registered, so no early message is missed; if it cannot
            # connect, go on anyway: reconciliation through HTTP covers the silence.
            await self._wait_connected()
            if submit and self.cancel_event is not None and self.cancel_event.is_set():
                # Cancelled while the socket was connecting: nothing was sent, nothing will be.
                self.result = JobResult(self.tracker.mark_cancelled(self.clock()))
                yield self.result.snapshot
                return
            if submit:
                self._submit_serial = self._serial if self._connected.is_set() else None
                known_as = await submit_once(
                    self.http,
                    self.graph,
                    prompt_id=self.prompt_id,
                    client_id=self.client_id,
                    extra_data=self.extra_data,
                    doubt_ok=True,
                )
                if known_as is None:
                    # It may run there: follow it as submitted; reconciliation asks once the server answers.
                    self.in_doubt = True
                    known_as = self.prompt_id
                    self._submit_serial = None
                    self._frames.put_nowait(_GAP)
                self._unbroken = self._submit_serial is not None
                if known_as != self.prompt_id:
                    self.prompt_id = known_as
                    self.tracker.rename(known_as)
                    self._unbroken = False
                    if self.on_renamed is not None:
                        await self.on_renamed(known_as)
                    self._frames.put_nowait(_GAP)  # its first messages were not recognised as ours: ask
            else:
                self._frames.put_nowait(_GAP)
            self._submitted = True
            yield self.tracker.snapshot
            async for snapshot in self._follow():
                yield snapshot
        finally:
            socket.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await socket
            if self._ending is not None:
                self._ending.cancel()
            for task in self._fetches.values():
                task.cancel()
            if self.result is None and self.confirmation is not None:
                self.confirmation.cancel()

    async def _wait_connected(self) -> None:
        """Until the socket is connected, ``connect_timeout`` passed, or the run was cancelled."""
        waits = [asyncio.ensure_future(self._connected.wait())]
        if self.cancel_event is not None:
            waits.append(asyncio.ensure_future(self.cancel_event.wait()))
        try:
            await asyncio.wait(waits, timeout=self.connect_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _follow(self) -> AsyncIterator[Snapshot]:
        last = self.tracker.snapshot
        in_a_row = 0
        while not last.phase.is_terminal:
            silent = False
            if self._frames.empty():
                in_a_row = 0
                try:
                    item = await asyncio.wait_for(self._frames.get(), self.silence_timeout)
                except TimeoutError:
                    item, silent = _GAP, True
            else:
                item = self._frames.get_nowait()
                in_a_row += 1
                if in_a_row % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # a flood of frames must not keep the rest of the bot waiting
            if self._frames.qsize() < MAX_QUEUED // 2:
                self._room.set()
            event: Event | None = None
            if item is _GAP:
                snapshot = await self._reconcile()
                if silent and snapshot.phase is Phase.RUNNING and self._submitted:
                    self._reopen()
            elif isinstance(item, _Dropped):
                if item.serial == self._submit_serial:
                    self._unbroken = False
                continue
            else:
                try:
                    event = decode(item)  # type: ignore[arg-type]
                except ComfyProtocolError as exc:
                    log.warning("job %s: ignoring a frame we cannot read: %s", self.prompt_id, exc)
                    continue
                if isinstance(event, Executed) and event.prompt_id in (None, self.prompt_id):
                    self._named.update(n for n in (event.node, event.display_node) if n is not None)
                snapshot = self.tracker.feed(event, self.clock())
            if snapshot.phase is Phase.RUNNING:
                self.started = True
            if snapshot is not last:
                self._fetch_early(snapshot)
                if snapshot.phase is Phase.DONE:
                    # Started before the DONE snapshot is handed on: the files keep coming while it is shown.
                    self._ending = self._end(snapshot, told_by=event)
                last = snapshot
                yield snapshot
        if self._ending is None and last.phase is Phase.DONE:
            self._ending = self._end(last, told_by=None)
        files = await self._ending if self._ending is not None else ()
        self.result = JobResult(self.tracker.snapshot, files)

    def _end(self, snapshot: Snapshot, *, told_by: Event | None) -> asyncio.Task[tuple[FetchedFile, ...]]:
        """The task that gets the finished job's files: the websocket's when its account is complete (and the
        record is checked in the background), else the record's (see the module doc)."""
        named = self._complete_account(snapshot, told_by)
        if named:
            self.confirmation = asyncio.create_task(self._confirm(named), name=f"confirm-{self.prompt_id}")
            return asyncio.create_task(self._fetch_all(named), name=f"outputs-{self.prompt_id}")
        return asyncio.create_task(self._collect(snapshot), name=f"outputs-{self.prompt_id}")

    def _complete_account(self, snapshot: Snapshot, told_by: Event | None) -> tuple[OutputFile, ...]:
        """The saved files the websocket named, when its account of the job is complete; else ()."""
        if not self.confirm_in_background or not self._unbroken or not isinstance(told_by, ExecutionSuccess):
            return ()
        sinks = _sinks(self.graph)
        if not sinks or not sinks <= self._named:
            return ()
        return tuple(dict.fromkeys(o for o in snapshot.outputs if not o.is_temporary))

    async def _reconcile(self) -> Snapshot:
        """Ask the server what became of our prompt and tell the tracker."""
        now = self.clock()
        try:
            job = await self.http.remote_job(self.prompt_id)
        except ComfyError as exc:
            self._unreachable_since = self._unreachable_since or now
            if now - self._unreachable_since > self.unreachable_timeout:
                raise JobLostError(
                    f"{self.http.base_url} unreachable for {now - self._unreachable_since:.0f} s: {exc}",
                    started=self.started,
                ) from exc
            log.info("job %s: reconciling failed (%s); will try again", self.prompt_id, exc)
            if self._reconcile_waits is None:
                cap = min(1.0, self.silence_timeout)
                self._reconcile_waits = Backoff(base=min(0.25, cap), cap=cap).delays()
            await asyncio.sleep(next(self._reconcile_waits))
            self._frames.put_nowait(_GAP)
            return self.tracker.snapshot
        self._unreachable_since = None
        self._reconcile_waits = None
        if not self._connected.is_set():
            self._answered.set()  # the server is back: the socket need not wait out its backoff
        if job.status is RemoteStatus.DONE:
            self._record = job
            return self.tracker.mark_done(job.outputs, now)
        if job.status is RemoteStatus.FAILED:
            return self.tracker.mark_failed(job.error, now, Failure.WORKFLOW)
        if job.status is RemoteStatus.CANCELLED:
            return self.tracker.mark_cancelled(now)
        if job.status is RemoteStatus.RUNNING:
            self.started = True
            return self.tracker.mark_running(now)
        if job.status is RemoteStatus.UNKNOWN:
            if self.cancel_requested:
                # Removed from the queue by our cancel (POST /queue delete leaves no history).
                return self.tracker.mark_cancelled(now)
            raise JobLostError(f"{self.http.base_url} no longer knows prompt {self.prompt_id}", started=self.started)
        return self.tracker.snapshot

    def _fetch_early(self, snapshot: Snapshot) -> None:
        """``executed`` named a saved file: start downloading it now, so the result is in hand sooner."""
        for output in snapshot.outputs:
            if not output.is_temporary and output not in self._fetches:
                self._fetches[output] = asyncio.create_task(self.http.view(output), name=f"view-{output.filename}")

    async def _collect(self, snapshot: Snapshot) -> tuple[FetchedFile, ...]:
        """The job's saved outputs, from the server's record (which is written just after the last message)."""
        record = self._record if self._record is not None else await self._final_record()
        outputs = record.outputs if record is not None and record.outputs else tuple(snapshot.outputs)
        return await self._fetch_all(tuple(dict.fromkeys(o for o in outputs if not o.is_temporary)))

    async def _fetch_all(self, wanted: tuple[OutputFile, ...]) -> tuple[FetchedFile, ...]:
        data = await asyncio.gather(*(self._fetch(o) for o in wanted))
        return tuple(FetchedFile(o, d) for o, d in zip(wanted, data, strict=True))

    async def _fetch(self, output: OutputFile) -> bytes:
        """One file, retried until ``fetch_deadline``: the file stays on the server, so patience loses nothing."""
        early = self._fetches.pop(output, None)

        async def download() -> bytes:
            nonlocal early
            started, early = early, None
            return await (started if started is not None else self.http.view(output))

        return await retry(
            download,
            what=f"job {self.prompt_id}: fetching {output.filename}",
            retryable=lambda exc: isinstance(exc, ComfyError),
            give_up_after=self.fetch_deadline,
            backoff=self.backoff,
            clock=self.clock,
            logger=log,
            on_retry=self.http.count_retry,
        )

    async def _confirm(self, named: tuple[OutputFile, ...]) -> Confirmation:
        """The background check of a result taken from the websocket: never raises, never changes the result."""
        try:
            async with asyncio.timeout(self.fetch_deadline):
                record = await self._final_record()
        except TimeoutError:
            record = None
        except Exception as exc:  # a closed session at shutdown, say: the result stands either way
            log.info("job %s: could not confirm the result with the server: %s", self.prompt_id, describe(exc))
            return Confirmation(None)
        if record is None:
            return Confirmation(None)
        keys = {_file_key(o) for o in named}
        missed = tuple(dict.fromkeys(o for o in record.outputs if not o.is_temporary and _file_key(o) not in keys))
        if missed:
            log.warning(
                "job %s: the server's record names %d saved file(s) its messages did not (%s); the result was "
                "delivered without them and they stay on %s",
                self.prompt_id,
                len(missed),
                ", ".join(o.filename for o in missed),
                self.http.base_url,
            )
        elif record.status is not RemoteStatus.DONE:
            log.warning(
                "job %s: its messages said done, the server's record says %s; the result stands",
                self.prompt_id,
                record.status,
            )
        return Confirmation(record, missed)

    async def _final_record(self, attempts: int = 20) -> RemoteJob | None:
        """The server's record of the finished job, or None if it did not have one after ``attempts`` looks."""

        async def terminal_record() -> RemoteJob:
            job = await self.http.remote_job(self.prompt_id)
            if not job.status.is_terminal:
                raise _NotRecordedYet(f"prompt {self.prompt_id} is {job.status} on the server")
            return job

        try:
            return await retry(
                terminal_record,
                what=f"job {self.prompt_id}: reading its final record",
                retryable=lambda exc: isinstance(exc, ComfyError | _NotRecordedYet),
                attempts=attempts,
                backoff=FINAL_RECORD_BACKOFF,
                level=logging.DEBUG,  # usual: the last message comes just before the record is written
                logger=log,
            )
        except (ComfyError, _NotRecordedYet) as exc:
            log.info("job %s: no final record from the server (%s); using what its messages said", self.prompt_id, exc)
            return None

    def _reopen(self) -> None:
        """The job runs and its socket heard nothing for ``silence_timeout``: ComfyUI may have unregistered it
        (the reconnect race in the module doc). Close it; the socket loop opens a fresh one at once."""
        ws = self._ws
        if ws is None:
            return
        log.info("job %s: running but silent on its websocket; reopening it", self.prompt_id)
        self.reopens += 1
        self._answered.set()
        self._ws = None
        task = asyncio.ensure_future(ws.close())
        task.add_done_callback(_ignore_result)

    async def _socket_loop(self) -> None:
        url = ws_url(self.http.base_url, self.client_id)
        waits = self.backoff.delays()
        while True:
            try:
                # ``async with`` returns only once the close handshake is done: the old registration is gone
                # before we open the next socket with the same clientId.
                async with connect(
                    url, max_size=MAX_FRAME, open_timeout=self.connect_timeout, close_timeout=CLOSE_TIMEOUT
                ) as ws:
                    await ws.send(FEATURE_FLAGS)
                    self._serial += 1
                    if self._submitted:
                        # Anything may have happened while we were not listening (or before we first were).
                        self._frames.put_nowait(_GAP)
                    self._ws = ws
                    self._answered.clear()
                    self._connected.set()
                    waits = self.backoff.delays()  # connected: the next drop starts the schedule over
                    try:
                        async for frame in ws:
                            self._frames.put_nowait(frame)
                            if self._frames.qsize() >= MAX_QUEUED:
                                self._room.clear()
                                await self._room.wait()  # stop reading: TCP pushes back on the server
                    finally:
                        self._ws = None
                        self._frames.put_nowait(_Dropped(self._serial))
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                log.info("job %s: websocket to %s dropped: %s", self.prompt_id, self.http.base_url, exc)
            self._connected.clear()
            self.reconnects += 1
            self.http.reconnects += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._answered.wait(), next(waits))
            if self._answered.is_set():
                # The server answers again (or we closed a deaf socket ourselves): a fresh schedule, now.
                self._answered.clear()
                waits = self.backoff.delays()


def _ignore_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _sinks(graph: Mapping[str, Any]) -> frozenset[str]:
    """The graph's nodes no other node reads from: where its outputs are (SaveImage, SaveVideo, …)."""
    read = {
        str(value[0])
        for node in graph.values()
        if isinstance(node, Mapping)
        for value in (node.get("inputs") or {}).values()
        if isinstance(value, list) and len(value) == 2
    }
    return frozenset(str(node_id) for node_id in graph if str(node_id) not in read)


def _file_key(output: OutputFile) -> tuple[str, str, str]:
    return (output.filename, output.subfolder, output.folder_type)
