"""The HTTP side of one ComfyUI server, over aiohttp.

How it works: every request goes through ``_request``, which is the one place where aiohttp's exceptions,
timeouts, 5xx answers and null / unparsable bodies are translated into ``ComfyUnavailableError`` (ours).
Idempotent calls (GETs) are retried by the one tenacity policy, ``idempotent_retry``; nothing that changes
server state is retried here — its caller must first find out whether the first attempt landed.

Never: log the request bodies (they hold user prompts) at INFO, or retry a POST blindly.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from discomfy.comfy.types import QueueState, SystemStats, parse_queue, parse_system_stats
from discomfy.errors import ComfyError, ComfyUnavailableError

log = logging.getLogger(__name__)


def idempotent_retry(attempts: int = 3, max_wait: float = 2.0) -> AsyncRetrying:
    """The retry policy for idempotent calls: only our 'unavailable' error, short jittered backoff."""
    return AsyncRetrying(
        retry=retry_if_exception_type(ComfyUnavailableError),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(initial=0.1, max=max_wait),
        reraise=True,
    )


class ComfyHTTP:
    """Requests to one ComfyUI server. The session is shared and owned by the caller."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, *, timeout: float = 30.0, attempts: int = 3):
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = attempts

    async def system_stats(self) -> SystemStats:
        return parse_system_stats(await self.get_json("/system_stats"))

    async def queue(self) -> QueueState:
        return parse_queue(await self.get_json("/queue"))

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET a JSON body, retried under ``idempotent_retry``."""
        async for attempt in idempotent_retry(self._attempts):
            with attempt:
                return await self._request("GET", path, params=params)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = self.base_url + path
        try:
            async with self._session.request(method, url, timeout=self._timeout, **kwargs) as response:
                body = await response.read()
                if response.status >= 500:
                    raise ComfyUnavailableError(f"{method} {url} answered HTTP {response.status}")
                if response.status >= 400:
                    # A 4xx will not get better by asking again: not retried.
                    raise ComfyError(f"{method} {url} answered HTTP {response.status}: {body[:200]!r}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ComfyUnavailableError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc
        try:
            parsed = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ComfyUnavailableError(f"{method} {url} answered a body that is not JSON: {body[:80]!r}") from exc
        if parsed is None:
            raise ComfyUnavailableError(f"{method} {url} answered null")
        return parsed
