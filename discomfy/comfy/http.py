"""The HTTP side of one ComfyUI server, over aiohttp.

How it works: every request goes through ``_send``, the one place where aiohttp's exceptions, timeouts, 5xx
answers and null / unparsable bodies become ``ComfyUnavailableError`` (ours). Idempotent calls, and only they,
go through ``_idempotent``: the project's retry policy (``discomfy.retry``), on that error only, with a short
backoff. ``submit`` (POST /prompt) is never retried here: it may have landed even when the answer was lost, so
the caller asks ``remote_job`` first (the prompt_id is ours).

Downloads (``view``) are streamed 1 MiB at a time and stop at ``max_download`` bytes (``comfyui.max_download_mb``):
a larger file — declared by ``Content-Length`` or found while reading — is refused with a ``DiscomfyError`` of
kind ``Failure.TOO_LARGE`` (not a ``ComfyError``: trying again would only fetch the same file), and what was read
is dropped with the connection. What a server sends is untrusted: a body of any size must not fill our memory.

Never: log request bodies (they hold user prompts) above DEBUG, or retry a call that changes server state
unless it is idempotent by construction (uploads named by content hash, cancels of one prompt_id).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from discomfy.comfy.rejection import describe_rejection
from discomfy.comfy.types import (
    OutputFile,
    QueueState,
    RemoteJob,
    RemoteStatus,
    SystemStats,
    parse_history,
    parse_job,
    parse_queue,
    parse_system_stats,
)
from discomfy.errors import ComfyError, ComfyProtocolError, ComfyUnavailableError, DiscomfyError, PromptRejectedError
from discomfy.outcome import Failure
from discomfy.retry import Backoff, retry


class ComfyUnreachableError(ComfyUnavailableError):
    """No connection could be made to the server: whatever we tried to send was certainly not received."""


log = logging.getLogger(__name__)


#: The largest file ``view`` downloads unless told otherwise (``comfyui.max_download_mb``'s default).
DEFAULT_MAX_DOWNLOAD = 512 * 1024 * 1024
#: A download is read in pieces of this size, so a refused one never held more than the cap and one piece.
DOWNLOAD_CHUNK = 1024 * 1024


def too_large(what: str, limit: int) -> DiscomfyError:
    """The error that ends a job whose result file is over the download cap (kind ``Failure.TOO_LARGE``)."""
    error = DiscomfyError(f"{what} is larger than the {limit // (1024 * 1024)} MiB we download")
    error.failure = Failure.TOO_LARGE
    error.user_message = "The image server made a result too large to deliver."
    return error


#: Between tries of an idempotent call: up to 0.1 s, 0.2 s, … 2 s (jittered).
IDEMPOTENT_BACKOFF = Backoff(base=0.1, cap=2.0)


def _unavailable(exc: BaseException) -> bool:
    return isinstance(exc, ComfyUnavailableError)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str

    def json(self, what: str) -> Any:
        """The parsed body; null or garbage means the server is not well (retryable), not a bug of ours."""
        try:
            parsed = json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ComfyUnavailableError(f"{what} answered a body that is not JSON: {self.body[:80]!r}") from exc
        if parsed is None:
            raise ComfyUnavailableError(f"{what} answered null")
        return parsed


class ComfyHTTP:
    """Requests to one ComfyUI server. The aiohttp session is shared and owned by the caller."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        timeout: float = 30.0,
        attempts: int = 3,
        max_download: int = DEFAULT_MAX_DOWNLOAD,
    ):
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = attempts
        #: Bytes: a ``/view`` body larger than this is refused (``too_large``), never read whole.
        self.max_download = max_download
        #: None until learned: does the server have the newer ``/api/jobs`` routes?
        self.has_jobs_api: bool | None = None
        #: Since start, for ``/metrics``: calls to this server tried again, and job websockets that dropped.
        self.retries = 0
        self.reconnects = 0

    def count_retry(self) -> None:
        self.retries += 1

    # -- reads (idempotent, retried) --

    async def system_stats(self) -> SystemStats:
        return parse_system_stats(await self.get_json("/system_stats"))

    async def queue(self) -> QueueState:
        return parse_queue(await self.get_json("/queue"))

    async def object_info(self) -> dict[str, Any]:
        info = await self.get_json("/object_info")
        if not isinstance(info, dict):
            raise ComfyProtocolError("/object_info answered something that is not an object")
        return info

    async def view(self, file: OutputFile) -> bytes:
        """Download one output file with ``GET /view``, streamed and capped at ``max_download`` bytes."""
        params = {"filename": file.filename, "subfolder": file.subfolder, "type": file.folder_type}
        return await self._idempotent(lambda: self._download("/view", params, file.filename), "GET /view")

    async def _download(self, path: str, params: Mapping[str, str], name: str) -> bytes:
        """One capped, streamed GET; errors translated as in ``_send``; over the cap: ``too_large``."""
        url = self.base_url + path
        limit = self.max_download
        # BytesIO, not a list joined at the end: its getvalue() hands over its buffer, so a file is held once.
        body = io.BytesIO()
        try:
            async with self._session.get(url, params=params, timeout=self._timeout) as response:
                if response.status >= 500:
                    raise ComfyUnavailableError(f"GET {url} answered HTTP {response.status}")
                if response.status != 200:
                    raise ComfyError(f"{path} of {name} answered HTTP {response.status}")
                declared = response.content_length
                if declared is not None and declared > limit:
                    response.close()
                    raise too_large(f"{path} of {name} ({declared} bytes declared)", limit)
                async for piece in response.content.iter_chunked(DOWNLOAD_CHUNK):
                    if body.tell() + len(piece) > limit:
                        body = io.BytesIO()
                        response.close()  # drop the connection: the rest of the body is never read
                        raise too_large(f"{path} of {name}", limit)
                    body.write(piece)
        except aiohttp.ClientConnectorError as exc:
            raise ComfyUnreachableError(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ComfyUnavailableError(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc
        return body.getvalue()

    async def remote_job(self, prompt_id: str) -> RemoteJob:
        """What the server knows of ``prompt_id``: ``/api/jobs/{id}`` on newer servers, else queue + history."""
        if self.has_jobs_api is not False:
            answer = await self._retrying("GET", f"/api/jobs/{prompt_id}")
            if answer.status == 200:
                self.has_jobs_api = True
                return parse_job(answer.json("/api/jobs"))
            if answer.status == 404 and answer.content_type == "application/json":
                # {"error": "Job not found"}: the route exists, the id does not (deleted, lost, never sent).
                self.has_jobs_api = True
                return RemoteJob(prompt_id, RemoteStatus.UNKNOWN)
            if answer.status == 404:
                self.has_jobs_api = False
                log.info("%s has no /api/jobs (an older ComfyUI): using /queue and /history", self.base_url)
            else:
                raise ComfyError(f"/api/jobs/{prompt_id} answered HTTP {answer.status}")
        queue = await self.queue()
        if prompt_id in queue.running:
            return RemoteJob(prompt_id, RemoteStatus.RUNNING)
        if prompt_id in queue.pending:
            return RemoteJob(prompt_id, RemoteStatus.PENDING)
        job = parse_history(prompt_id, await self.get_json(f"/history/{prompt_id}"))
        if job.status is RemoteStatus.UNKNOWN:
            # It may have moved from the queue into history between our two reads: look once more.
            queue = await self.queue()
            if prompt_id in queue.running or prompt_id in queue.pending:
                running = prompt_id in queue.running
                return RemoteJob(prompt_id, RemoteStatus.RUNNING if running else RemoteStatus.PENDING)
            job = parse_history(prompt_id, await self.get_json(f"/history/{prompt_id}"))
        return job

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        answer = await self._retrying("GET", path, params=params)
        if answer.status != 200:
            raise ComfyError(f"GET {path} answered HTTP {answer.status}")
        return answer.json(f"GET {path}")

    # -- writes --

    async def submit(
        self, graph: Mapping[str, Any], *, prompt_id: str, client_id: str, extra_data: Mapping[str, Any] | None = None
    ) -> str:
        """``POST /prompt`` once, with our own prompt_id; returns the id the server knows the job by — ours, or
        on servers older than client-chosen ids, the one it minted. Not retried (see module doc).

        A 400 becomes ``PromptRejectedError`` whose text names the node input at fault.
        """
        payload: dict[str, Any] = {"prompt": graph, "prompt_id": prompt_id, "client_id": client_id}
        if extra_data:
            payload["extra_data"] = dict(extra_data)
        answer = await self._send("POST", "/prompt", json=payload)
        if answer.status == 400:
            body = _json_or_none(answer.body)
            raise PromptRejectedError(describe_rejection(body, node_titles=_titles(graph)), body)
        if answer.status != 200:
            raise ComfyError(f"POST /prompt answered HTTP {answer.status}")
        reply = answer.json("POST /prompt")
        if not isinstance(reply, dict):
            raise ComfyProtocolError(f"POST /prompt answered an unexpected body: {str(reply)[:120]}")
        server_id = reply.get("prompt_id")
        if server_id is None:
            return prompt_id
        if not isinstance(server_id, str) or not server_id:
            raise ComfyProtocolError(f"POST /prompt answered an unexpected prompt_id: {str(server_id)[:80]}")
        if server_id != prompt_id:
            # An older ComfyUI ignores the prompt_id we send and mints its own: from now on the job is that id.
            log.info("%s ignored our prompt_id (an older ComfyUI); it calls the job %s", self.base_url, server_id)
        return server_id

    async def upload_image(self, data: bytes, name: str, *, subfolder: str = "discomfy") -> str:
        """``POST /upload/image`` with overwrite, so a retry under the same (content-hash) name is harmless.

        Returns the value a LoadImage node wants: ``subfolder/name`` as the server stored it.
        """

        async def upload() -> str:
            form = aiohttp.FormData()  # a fresh one per try: a sent form cannot be sent again
            form.add_field("image", data, filename=name, content_type="application/octet-stream")
            form.add_field("subfolder", subfolder)
            form.add_field("overwrite", "true")
            form.add_field("type", "input")
            answer = await self._send("POST", "/upload/image", data=form)
            if answer.status != 200:
                raise ComfyError(f"/upload/image answered HTTP {answer.status}: {answer.body[:120]!r}")
            reply = answer.json("/upload/image")
            if not isinstance(reply, dict) or not isinstance(reply.get("name"), str):
                raise ComfyProtocolError("/upload/image answered without a file name")
            stored_subfolder = str(reply.get("subfolder") or "")
            return f"{stored_subfolder}/{reply['name']}" if stored_subfolder else str(reply["name"])

        return await self._idempotent(upload, f"POST /upload/image of {name}")

    async def cancel_job(self, prompt_id: str) -> bool | None:
        """``POST /api/jobs/{id}/cancel`` (newer servers: removes if pending, interrupts if running).

        Returns the server's verdict, or None when the server has no such route (an older ComfyUI).
        """
        answer = await self._retrying("POST", f"/api/jobs/{prompt_id}/cancel")
        if answer.status == 404 and answer.content_type != "application/json":
            self.has_jobs_api = False
            return None
        if answer.status not in (200, 404):
            raise ComfyError(f"/api/jobs/{prompt_id}/cancel answered HTTP {answer.status}")
        reply = _json_or_none(answer.body)
        return bool(isinstance(reply, dict) and reply.get("cancelled"))

    async def delete_from_queue(self, prompt_ids: list[str]) -> None:
        """``POST /queue {"delete": [...]}``: removes pending jobs (they then vanish from history too)."""
        answer = await self._retrying("POST", "/queue", json={"delete": prompt_ids})
        if answer.status != 200:
            raise ComfyError(f"POST /queue answered HTTP {answer.status}")

    async def interrupt(self, prompt_id: str | None) -> None:
        """``POST /interrupt``: with a prompt_id only that job, if it is the one running; without, whatever runs."""
        answer = await self._retrying("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else {})
        if answer.status != 200:
            raise ComfyError(f"POST /interrupt answered HTTP {answer.status}")

    # -- plumbing --

    async def _retrying(self, method: str, path: str, **kwargs: Any) -> Answer:
        return await self._idempotent(lambda: self._send(method, path, **kwargs), f"{method} {path}")

    async def _idempotent[T](self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """``call`` (idempotent by construction), tried up to ``attempts`` times while the server is unavailable.

        Each retry is logged at DEBUG only: the caller logs the outcome (a pool health check polls a server
        that is down every few seconds, and would flood the log)."""
        return await retry(
            call,
            what=f"{what} on {self.base_url}",
            retryable=_unavailable,
            attempts=self._attempts,
            backoff=IDEMPOTENT_BACKOFF,
            level=logging.DEBUG,
            logger=log,
            on_retry=self.count_retry,
        )

    async def _send(self, method: str, path: str, **kwargs: Any) -> Answer:
        """One request. The one place aiohttp errors and 5xx become ``ComfyUnavailableError``."""
        url = self.base_url + path
        try:
            async with self._session.request(method, url, timeout=self._timeout, **kwargs) as response:
                body = await response.read()
                content_type = response.content_type
        except aiohttp.ClientConnectorError as exc:
            # No connection was made: the request certainly did not reach the server.
            raise ComfyUnreachableError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ComfyUnavailableError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc
        if response.status >= 500:
            raise ComfyUnavailableError(f"{method} {url} answered HTTP {response.status}")
        return Answer(response.status, body, content_type)


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _titles(graph: Mapping[str, Any]) -> dict[str, str]:
    titles = {}
    for node_id, node in graph.items():
        if isinstance(node, dict):
            meta = node.get("_meta")
            title = meta.get("title") if isinstance(meta, dict) else None
            titles[str(node_id)] = str(title or node.get("class_type") or node_id)
    return titles
