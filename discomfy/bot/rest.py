"""The bot's own requests for its messages (edits, posts), made with aiohttp so their rate-limit headers are ours.

Why not nextcord's HTTP client: it answers with the body only, and it keys its buckets by route and channel, not
by webhook token, so every interaction's message would wait on every other's. Message writes are the bot's
busiest traffic, so they go through here, paced by ``ratelimits.BucketBook`` (via ``pacing.Pacer``), and every
answer's ``X-RateLimit-*`` headers are folded back into it. nextcord keeps the gateway, interaction responses and
command registration.

How it works: ``DiscordRest.send(request)`` sends one request — JSON, or multipart with ``payload_json`` and
``files[n]`` as Discord's docs describe — with the bot token only on bot-token routes (an interaction webhook
route carries its token in the path). It learns from the answer, then returns the parsed body, or raises
``DiscordHTTPError(status, code)`` (``status`` 0 for a connection failure). It never waits or retries: the pacer
decides when, the editor decides whether to try again.

Never: log a URL or a body (webhook routes carry the interaction token in the path); send without the
``allowed_mentions`` the caller set.
"""

from __future__ import annotations

import json
import mimetypes
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from discomfy.bot.ratelimits import Answer, BucketBook, RouteKey
from discomfy.errors import DiscomfyError

USER_AGENT = "DiscordBot (https://github.com/discomfy/discomfy, 0.1) discomfy"
REQUEST_TIMEOUT = 60.0


class DiscordHTTPError(DiscomfyError):
    """Discord refused a request (``status``, Discord's JSON ``code``), or it could not be sent (status 0)."""

    def __init__(self, status: int, code: int = 0, message: str = "") -> None:
        super().__init__(f"Discord answered {status} (code {code}): {message[:200]}")
        self.status, self.code = status, code


@dataclass(frozen=True)
class Request:
    method: str
    #: The route template, e.g. ``/channels/{channel_id}/messages/{message_id}``.
    template: str
    #: Path parameters; an interaction token among them is a secret: kept out of repr.
    params: Mapping[str, int | str] = field(repr=False)
    key: RouteKey
    payload: Mapping[str, Any]
    files: tuple[tuple[str, bytes], ...] = ()
    bot_token: bool = True

    @classmethod
    def channel(
        cls, method: str, template: str, payload: Mapping[str, Any], files: tuple[tuple[str, bytes], ...] = (), **p: int
    ) -> Request:
        return cls(method, template, p, RouteKey.channel(f"{method} {template}", p["channel_id"]), payload, files)

    @classmethod
    def webhook_original(
        cls,
        application_id: int,
        token: str,
        payload: Mapping[str, Any],
        files: tuple[tuple[str, bytes], ...] = (),
        *,
        channel_id: int | None = None,
    ) -> Request:
        template = "/webhooks/{application_id}/{token}/messages/@original"
        key = RouteKey.webhook(f"PATCH {template}", application_id, token, channel_id)
        params: dict[str, int | str] = {"application_id": application_id, "token": token}
        return cls("PATCH", template, params, key, payload, files, bot_token=False)

    def url(self, base: str) -> str:
        return base.rstrip("/") + self.template.format_map({k: quote(str(v), safe="") for k, v in self.params.items()})


class DiscordRest:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base: str,
        token: str,
        book: BucketBook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._base = base
        self._auth = f"Bot {token}"
        self.book = book or BucketBook()
        self._clock = clock

    async def send(self, request: Request) -> Any:
        """One request (its slot already reserved on ``request.key``); the parsed answer, or ``DiscordHTTPError``."""
        headers = {"User-Agent": USER_AGENT}
        if request.bot_token:
            headers["Authorization"] = self._auth
        data: Any
        if request.files:
            data = aiohttp.FormData()
            data.add_field("payload_json", json.dumps(request.payload), content_type="application/json")
            for n, (name, blob) in enumerate(request.files):
                kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
                data.add_field(f"files[{n}]", blob, filename=name, content_type=kind)
        else:
            data = json.dumps(request.payload)
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                request.method,
                request.url(self._base),
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            ) as response:
                body_text = await response.text()
                status, answer_headers = response.status, dict(response.headers)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.book.release(request.key)
            raise DiscordHTTPError(0, 0, type(exc).__name__) from None  # the text may hold the URL
        except BaseException:
            self.book.release(request.key)  # cancelled: the slot was not used as far as we can tell
            raise
        body = _parse(body_text)
        retry_after, is_global = None, False
        if status == 429 and isinstance(body, dict):
            value = body.get("retry_after")
            retry_after = float(value) if isinstance(value, int | float) and value >= 0 else None
            is_global = body.get("global") is True
        self.book.learn(request.key, Answer(status, answer_headers, retry_after, is_global), self._clock())
        if 200 <= status < 300:
            return body
        code = body.get("code") if isinstance(body, dict) else 0
        message = body.get("message") if isinstance(body, dict) else ""
        raise DiscordHTTPError(status, code if isinstance(code, int) else 0, str(message or ""))


def _parse(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
