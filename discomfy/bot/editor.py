"""The one editor of one Discord message: coalescing, paced, drawn at send time, never losing the last state.

How it works:
- ``update(state, phase=...)`` stores the latest state — a rendered message, or a ``Draw`` called only when its
  edit is about to be sent — and wakes the editor's task; it never waits. States that arrive while an edit is in
  flight or waits its turn replace each other: only the latest is drawn and sent, so nothing sent is older than
  its request. Progress requests start at least ``min_interval`` apart (``discord.progress_interval``, 1 s); a
  phase change (waiting → running) waits only ``PHASE_GAP`` of it, and the final state does not wait at all.
- Before each request the editor awaits ``pace(key, priority)`` (``pacing.Pacer``) for the Discord bucket the
  request will use (``key``: the interaction token's bucket, or the channel's), asking ``_priority()`` when the
  turn comes: final, phase change or first look, progress. A drawn state identical to what the message already
  shows is not sent (its turn is given back).
- ``finish(rendered)`` queues the final state after whatever is in flight, waits its turn, sends it with retries
  (transient failures: 5xx, connection errors, 429s) waiting by ``retry.Backoff`` up to ``final_deadline``, and
  returns the message id; the answer's attachment URLs are kept (``attachment_urls``). ``close()`` stops the
  task (an unfinished update is dropped).
- Routes, chosen per request (``route_for``):
  1. the interaction webhook (``PATCH /webhooks/{app}/{token}/messages/@original``) while the token is usable:
     created less than 15 min ago minus ``token_margin``. Its answer tells us the message id.
  2. the channel message with the bot token (``PATCH /channels/{c}/messages/{m}``) once the token is near its end
     or answered 401 / 50027 (or 10015), and we know the message id.
  3. a fresh message in the channel (``POST /channels/{c}/messages``, a reply to the old one when it exists)
     when the message is older than an hour and Discord refuses edits (30046), when it was deleted (10008), or
     when the token is dead before we learnt the id. ``on_message_moved(new_id)`` is called; later edits go there.
  ``on_message_id(id)`` is called whenever the id the editor writes to becomes known or changes (save it in the
  job row: a restarted bot edits the channel message by id).
- Requests go through ``rest.DiscordRest`` (whose answers teach the bucket book). A request with files is
  multipart: ``payload_json`` plus ``files[n]``, and ``attachments`` lists ``{"id": n, "filename": ...}`` for each
  new file and ``{"id": <id>}`` for each existing attachment to keep; Discord removes the attachments not listed.
  Without files, an absent ``attachments`` keeps them all and ``[]`` removes them all. So: a new preview replaces
  the old one, the final result replaces the preview. Files the message already carries are not sent again.
- ``allowed_mentions`` is always ``{"parse": []}``: an edit never pings anyone.

Never: block or slow the caller of ``update``; run two requests for one message at once; lose the final state
to a transient failure; send a request without its ``allowed_mentions``; log the interaction token.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from discomfy.bot.pacing import PacerClosedError, Priority
from discomfy.bot.ratelimits import RouteKey
from discomfy.bot.render_job import RenderedMessage
from discomfy.bot.rest import DiscordHTTPError, DiscordRest, Request
from discomfy.errors import DiscomfyError
from discomfy.jobs.state import INTERACTION_TOKEN_LIFETIME
from discomfy.retry import Backoff

__all__ = ["EditTarget", "Failure", "MessageEditError", "MessageEditor", "RouteKind", "classify", "route_for"]

log = logging.getLogger(__name__)

#: Discord's JSON error codes the editor acts on.
UNKNOWN_MESSAGE = 10008
UNKNOWN_WEBHOOK = 10015
INVALID_WEBHOOK_TOKEN = 50027
OLD_MESSAGE_EDIT_LIMIT = 30046
NO_MENTIONS: dict[str, Any] = {"parse": []}
#: A phase change (waiting → running → …) waits this fraction of the message's interval after its last edit.
PHASE_GAP = 0.2
#: Seconds ``close`` waits for the answer to a request already sent (a stopping bot keeps the id of what it made).
CLOSE_GRACE = 2.0
WEBHOOK_ORIGINAL = "/webhooks/{application_id}/{token}/messages/@original"
CHANNEL_MESSAGE = "/channels/{channel_id}/messages/{message_id}"
CHANNEL_MESSAGES = "/channels/{channel_id}/messages"


class MessageEditError(DiscomfyError):
    """The final state of a message could not be delivered (a permanent refusal, or retries ran out)."""

    user_message = "The result could not be posted to Discord. Try `/show` with the job id in a moment."


@dataclass(frozen=True)
class EditTarget:
    """Where the message lives and how it may be reached. ``token_created_at`` is a UNIX time."""

    channel_id: int
    message_id: int | None
    application_id: int
    token: str | None = field(repr=False)
    token_created_at: float
    #: When the message does not exist yet and is posted with the bot token: the message it replies to.
    reply_to: int | None = None


class RouteKind(StrEnum):
    WEBHOOK = "webhook"
    CHANNEL = "channel"
    NEW_MESSAGE = "new_message"


class Failure(StrEnum):
    TOKEN_DEAD = "token_dead"  # 401 / 50027 / 10015 on the webhook: use the bot token from now on
    MESSAGE_TOO_OLD = "message_too_old"  # 30046: post a fresh message
    MESSAGE_GONE = "message_gone"  # 10008: deleted; post a fresh message
    TRANSIENT = "transient"  # 5xx, 429 left over, connection trouble: try again later
    PERMANENT = "permanent"  # anything else (400 invalid form, 403): this state cannot be sent


#: Failures after which the next request takes another route (and is worth making at once).
ROUTE_CHANGES = frozenset({Failure.TOKEN_DEAD, Failure.MESSAGE_TOO_OLD, Failure.MESSAGE_GONE})


def classify(status: int | None, code: int, *, webhook: bool) -> Failure:
    """What a failed request means; ``status`` is ``None`` for a connection error. The one retry policy."""
    if status is None or status >= 500 or status == 429:
        return Failure.TRANSIENT
    if code == OLD_MESSAGE_EDIT_LIMIT:
        return Failure.MESSAGE_TOO_OLD
    if webhook and (status == 401 or code in (INVALID_WEBHOOK_TOKEN, UNKNOWN_WEBHOOK)):
        return Failure.TOKEN_DEAD
    if code == UNKNOWN_MESSAGE:
        return Failure.MESSAGE_GONE
    return Failure.PERMANENT


def route_for(*, token_usable: bool, token_dead: bool, message_id: int | None, must_post: bool) -> RouteKind:
    """The route the next request takes (rules 1–3 of the module docstring)."""
    if must_post:
        return RouteKind.NEW_MESSAGE
    if token_usable and not token_dead:
        return RouteKind.WEBHOOK
    if message_id is not None:
        return RouteKind.CHANNEL
    # The token is near its end but we never learnt the id: the token may still work; if not, we post.
    return RouteKind.NEW_MESSAGE if token_dead else RouteKind.WEBHOOK


MovedCallback = Callable[[int], Awaitable[None] | None]
#: Draws the message's latest state when its edit is about to be sent (so what is sent is never stale).
Draw = Callable[[], Awaitable[RenderedMessage]]
#: Awaited before every request (``Pacer.turn``): the bucket the request will use, and the editor's priority.
Pace = Callable[[RouteKey, Callable[[], int]], Awaitable[None]]


async def no_pacing(key: RouteKey, priority: Callable[[], int]) -> None:
    """For a lone editor (``/show``): its one request goes at once; Discord's answer still teaches the book."""


class MessageEditor:
    """Edits one message; see the module docstring. Create it inside the running event loop."""

    def __init__(
        self,
        rest: DiscordRest,
        target: EditTarget,
        *,
        min_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        token_margin: float = 60.0,
        on_message_moved: MovedCallback | None = None,
        on_message_id: MovedCallback | None = None,
        retry_base: float = 0.5,
        retry_cap: float = 30.0,
        final_deadline: float = 600.0,
        pace: Pace = no_pacing,
        on_edit: Callable[[str], None] | None = None,
    ) -> None:
        self._rest = rest
        self._target = target
        self.min_interval = min_interval
        self._clock = clock
        self._wall_clock = wall_clock
        self._token_margin = token_margin
        self._on_moved = on_message_moved
        self._on_id = on_message_id
        self._pace = pace
        #: Told "progress" or "final" after each accepted request (``/metrics``).
        self._on_edit = on_edit
        self._closed = False
        self._retry_base, self._retry_cap, self._final_deadline = retry_base, retry_cap, final_deadline
        self._message_id = target.message_id
        self._token_dead = target.token is None
        self._must_post = False
        self._pending: Draw | None = None
        self._pending_phase: str | None = None
        self._sent_phase: str | None = None
        self._final: RenderedMessage | None = None
        self._finished: asyncio.Future[int] | None = None
        self._wake = asyncio.Event()
        #: Set when something should not wait out the whole interval: the final state, or a phase change.
        self._urgent = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Clear while a request is on its way to Discord (``close`` waits for its answer).
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_request: float | None = None
        #: What the last accepted request made the message look like (an identical edit is skipped).
        self._last_sent: tuple[Any, ...] | None = None
        # What the message carries now, as far as we know: our files and Discord's ids for them.
        self._files: tuple[tuple[str, bytes], ...] = ()
        self._attachment_ids: list[str] = []
        self.edits = 0  # requests that succeeded, for logs and tests
        self.skipped = 0  # drawn states identical to what the message already shows
        #: Discord's URLs of the message's files, by file name, from the last answer.
        self.attachment_urls: dict[str, str] = {}

    @property
    def message_id(self) -> int | None:
        return self._message_id

    @property
    def channel_id(self) -> int:
        return self._target.channel_id

    # --- the public surface ---------------------------------------------------------------------------------

    def update(self, state: RenderedMessage | Draw, *, phase: str | None = None) -> None:
        """The message should look like ``state`` soon: a rendered message, or a ``Draw`` called when the edit is
        about to be sent. ``phase`` names the job's phase: a state whose phase differs from the last one sent
        goes before plain progress in a busy bucket. Never waits; a later update replaces this one."""
        if self._closed or self._finished is not None:
            return  # finished: the final state is the last word
        self._pending = state if callable(state) else _drawn(state)
        self._pending_phase = phase
        if self._phase_changed():
            self._urgent.set()
        self._start()

    async def finish(self, rendered: RenderedMessage) -> int:
        """Sends ``rendered`` as the final state (after its turn, with retries) and returns the message id."""
        if self._closed and self._finished is None:
            raise MessageEditError("finish() after close()")
        if self._finished is None:
            self._finished = asyncio.get_running_loop().create_future()
            self._final, self._pending = rendered, None
            self._urgent.set()
            self._start()
        return await asyncio.shield(self._finished)

    async def close(self) -> None:
        """Stops the editor; an update not yet sent is dropped, a ``finish`` still waiting fails. A request
        already sent is waited for (up to ``CLOSE_GRACE``): Discord may have made the message, and its id must
        reach ``on_message_id``, or the next run would post a second message and leave this one stale."""
        self._closed = True
        if self._task is not None and not self._idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), CLOSE_GRACE)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._finished is not None and not self._finished.done():
            self._finished.set_exception(MessageEditError("the editor was closed before the final edit"))

    # --- the task -------------------------------------------------------------------------------------------

    def _start(self) -> None:
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="message-editor")

    async def _run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._pending is not None or (self._final is not None and not self._done()):
                    await self._wait_interval()
                    if self._final is not None and not self._done():
                        await self._send_final(self._final)
                    elif self._pending is not None:
                        await self._send_update()
                if self._done():
                    return
        except asyncio.CancelledError:
            raise
        except PacerClosedError:  # the bot is stopping: nothing more is sent
            if self._finished is not None and not self._finished.done():
                self._finished.set_exception(MessageEditError("the bot is stopping"))
        except Exception as exc:  # a bug: never leave finish() waiting forever
            log.exception("message editor for channel %s stopped", self._target.channel_id)
            if self._finished is not None and not self._finished.done():
                self._finished.set_exception(MessageEditError(f"editor failed: {exc!r}"))

    def _done(self) -> bool:
        return self._finished is not None and self._finished.done()

    def _phase_changed(self) -> bool:
        return self.edits > 0 and self._pending_phase is not None and self._pending_phase != self._sent_phase

    async def _wait_interval(self) -> None:
        # The final state does not wait out this message's interval (the result should show at once; the
        # bucket's pacer still keeps us inside Discord's limits), and a phase change (waiting → running) waits
        # only a fifth of it; either one arriving while plain progress waits its interval cuts the wait short.
        while self._last_request is not None and self._final is None:
            gap = self.min_interval * (PHASE_GAP if self._phase_changed() else 1.0)
            delay = self._last_request + gap - self._clock()
            if delay <= 0:
                return
            self._urgent.clear()
            try:
                await asyncio.wait_for(self._urgent.wait(), delay)
            except TimeoutError:
                return

    def _priority(self) -> int:
        """For the pacer, asked when a turn comes up: the final state, then a first look or a phase change."""
        if self._final is not None:
            return Priority.FINAL
        if self.edits == 0 or (self._pending_phase is not None and self._pending_phase != self._sent_phase):
            return Priority.PHASE
        return Priority.PROGRESS

    async def _send_update(self) -> None:
        kind = self._route()
        key = self._key(kind)
        await self._pace(key, self._priority)
        draw, phase = self._pending, self._pending_phase
        if draw is None or self._final is not None:
            self._rest.book.release(key)  # the final state arrived meanwhile: it goes next, on its own turn
            return
        self._pending = None
        try:
            rendered = await draw()
        except BaseException:
            self._rest.book.release(key)  # nothing was sent on this turn
            raise
        if self._looks_like(kind, rendered) == self._last_sent:
            self._rest.book.release(key)  # nothing new to show: no request
            self.skipped += 1
            self._sent_phase = phase
            return
        failure = await self._attempt(kind, rendered)
        if failure is None:
            self._sent_phase = phase
            if self._on_edit is not None:
                self._on_edit("progress")
        elif (failure is Failure.TRANSIENT or failure in ROUTE_CHANGES) and self._pending is None:
            self._pending, self._pending_phase = draw, phase  # nothing newer came: drawn afresh next turn
        elif failure is Failure.PERMANENT:
            log.warning("progress edit refused for message %s; skipped", self._message_id)

    async def _send_final(self, rendered: RenderedMessage) -> None:
        assert self._finished is not None
        deadline = self._clock() + self._final_deadline
        waits = Backoff(self._retry_base, self._retry_cap).delays()
        while True:
            kind = self._route()
            await self._pace(self._key(kind), self._priority)
            failure = await self._attempt(kind, rendered)
            if failure is None:
                assert self._message_id is not None
                if self._on_edit is not None:
                    self._on_edit("final")
                self._finished.set_result(self._message_id)
                return
            delay = next(waits) if failure is Failure.TRANSIENT else 0.0
            if failure is Failure.PERMANENT or self._clock() + delay > deadline:
                self._finished.set_exception(MessageEditError(f"final edit not delivered ({failure})"))
                return
            if failure is Failure.TRANSIENT:
                await asyncio.sleep(delay)
            else:
                waits = Backoff(self._retry_base, self._retry_cap).delays()  # a new route starts afresh

    def _route(self) -> RouteKind:
        usable = self._wall_clock() + self._token_margin < self._target.token_created_at + INTERACTION_TOKEN_LIFETIME
        return route_for(
            token_usable=usable, token_dead=self._token_dead, message_id=self._message_id, must_post=self._must_post
        )

    def _key(self, kind: RouteKind) -> RouteKey:
        target = self._target
        if kind is RouteKind.WEBHOOK:
            assert target.token is not None
            return RouteKey.webhook(f"PATCH {WEBHOOK_ORIGINAL}", target.application_id, target.token, target.channel_id)
        if kind is RouteKind.CHANNEL:
            return RouteKey.channel(f"PATCH {CHANNEL_MESSAGE}", target.channel_id)
        return RouteKey.channel(f"POST {CHANNEL_MESSAGES}", target.channel_id)

    async def _attempt(self, kind: RouteKind, rendered: RenderedMessage) -> Failure | None:
        """One request by route ``kind`` (its turn taken); ``None`` on success, else what went wrong."""
        self._last_request = self._clock()
        self._idle.clear()
        try:
            answer = await self._rest.send(self._request(kind, rendered))
        except DiscordHTTPError as exc:
            failure = classify(exc.status or None, exc.code, webhook=kind is RouteKind.WEBHOOK)
            log.info("%s edit of message %s: %s %s → %s", kind, self._message_id, exc.status, exc.code, failure)
        else:
            await self._accepted(kind, rendered, answer)
            return None
        finally:
            self._idle.set()
        if failure is Failure.TOKEN_DEAD:
            self._token_dead = True
        elif failure in (Failure.MESSAGE_TOO_OLD, Failure.MESSAGE_GONE):
            self._must_post = True
        return failure

    def _looks_like(self, kind: RouteKind, rendered: RenderedMessage) -> tuple[Any, ...]:
        """What the message shows after ``rendered`` is sent (a fresh post is never "identical")."""
        files = tuple((name, hash(data)) for name, data in self._files_after(rendered))
        return (kind is RouteKind.NEW_MESSAGE, rendered.content, rendered.embeds, rendered.components, files)

    async def _accepted(self, kind: RouteKind, rendered: RenderedMessage, answer: Any) -> None:
        self.edits += 1
        self._last_sent = self._looks_like(RouteKind.CHANNEL, rendered)
        self._files = self._files_after(rendered)
        if isinstance(answer, dict):
            if answer.get("id") is not None:
                new_id = int(answer["id"])
                old_id, self._message_id = self._message_id, new_id
                if kind is RouteKind.NEW_MESSAGE:
                    self._must_post = False
                    await self._notify(self._on_moved, new_id)
                if new_id != old_id:
                    await self._notify(self._on_id, new_id)
            attachments = [a for a in answer.get("attachments") or [] if isinstance(a, dict)]
            self._attachment_ids = [str(a["id"]) for a in attachments if "id" in a]
            self.attachment_urls = {
                str(a["filename"]): str(a["url"]) for a in attachments if a.get("filename") and a.get("url")
            }

    @staticmethod
    async def _notify(callback: MovedCallback | None, message_id: int) -> None:
        if callback is None:
            return
        try:
            result = callback(message_id)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("message id callback failed for %s", message_id)

    # --- requests -------------------------------------------------------------------------------------------

    def _files_after(self, rendered: RenderedMessage) -> tuple[tuple[str, bytes], ...]:
        if rendered.keep_attachments:
            return self._files + rendered.files
        return rendered.files

    def _request(self, kind: RouteKind, rendered: RenderedMessage) -> Request:
        target = self._target
        payload: dict[str, Any] = {
            "content": rendered.content,
            "embeds": list(rendered.embeds),
            "components": list(rendered.components),
            "allowed_mentions": NO_MENTIONS,
        }
        files = rendered.files
        kept: list[dict[str, Any]] | None
        if kind is RouteKind.NEW_MESSAGE:
            # A new message has none of the old attachments: upload everything it should carry.
            files, kept = self._files_after(rendered), []
            reference = self._message_id if self._message_id is not None else target.reply_to
            if reference is not None:
                payload["message_reference"] = {"message_id": str(reference), "fail_if_not_exists": False}
        else:
            if files and files == self._files and not rendered.keep_attachments:
                files = ()  # the message already carries exactly these: leave them be (no "attachments" key)
            elif rendered.keep_attachments:
                if files:
                    payload["attachments"] = [{"id": i} for i in self._attachment_ids]
            else:
                payload["attachments"] = []
            kept = payload.get("attachments")
        if files:
            new = [{"id": n, "filename": name} for n, (name, _) in enumerate(files)]
            payload["attachments"] = list(kept or []) + new
        if kind is RouteKind.NEW_MESSAGE:
            return Request.channel("POST", CHANNEL_MESSAGES, payload, files, channel_id=target.channel_id)
        if kind is RouteKind.WEBHOOK:
            assert target.token is not None
            return Request.webhook_original(
                target.application_id, target.token, payload, files, channel_id=target.channel_id
            )
        assert self._message_id is not None
        return Request.channel(
            "PATCH", CHANNEL_MESSAGE, payload, files, channel_id=target.channel_id, message_id=self._message_id
        )


def _drawn(rendered: RenderedMessage) -> Draw:
    async def draw() -> RenderedMessage:
        return rendered

    return draw
