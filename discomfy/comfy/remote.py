"""Exactly-once submission and safe cancellation of one prompt on one ComfyUI server.

Submission: the prompt_id is ours, so after any doubt (a timeout, a dropped connection, a 5xx or a garbled
answer to ``POST /prompt``) we *ask* the server about that id before sending again. We only resend after the
server has positively answered "unknown". A job is never run twice. When the answer was lost *and* the server then
stays unreachable for the few tries here, the prompt may well have landed (a real ComfyUI queues it before it
answers): with ``doubt_ok`` the answer is then ``None``, and the caller follows the job as submitted —
reconciliation asks the server once it answers again, and only a positive "unknown" sends the prompt again.

Cancellation: newer servers have ``POST /api/jobs/{id}/cancel`` (atomic: dequeue if pending, interrupt if
running). Older ones get ``POST /queue {"delete"}`` for a pending job and ``POST /interrupt`` for a running
one — and because an old server's interrupt stops *whatever* runs, we send it only after checking that the
running job is ours. The answer is confirmed by asking the server again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from discomfy.comfy.http import ComfyHTTP, ComfyUnreachableError
from discomfy.comfy.types import RemoteJob, RemoteStatus
from discomfy.errors import ComfyUnavailableError
from discomfy.retry import Backoff, retry

log = logging.getLogger(__name__)

#: Between tries of a submission in doubt: up to 0.25 s, 0.5 s, 1 s, … (jittered).
SUBMIT_BACKOFF = Backoff(base=0.25, cap=2.0)


async def submit_once(
    http: ComfyHTTP,
    graph: Mapping[str, Any],
    *,
    prompt_id: str,
    client_id: str,
    extra_data: Mapping[str, Any] | None = None,
    attempts: int = 4,
    backoff: Backoff = SUBMIT_BACKOFF,
    doubt_ok: bool = False,
) -> str | None:
    """Make sure the server has ``prompt_id`` queued (or already ran it), sending it at most once per
    positive "unknown" from the server; returns the id the server knows the job by (see ``ComfyHTTP.submit``:
    an older server that ignores our id names its own, and then asking about ours cannot prove a lost answer
    landed — exactly-once holds only on servers that take the client's id).

    When an attempt may have reached the server and it could not be asked about since: returns ``None`` with
    ``doubt_ok`` (follow the job as submitted: never fail it, never resend it blindly), else raises
    ``ComfyUnavailableError``. Raises ``ComfyUnreachableError`` when no attempt ever reached it (the
    job may safely go elsewhere), ``PromptRejectedError`` when it refuses the graph."""
    must_ask_first = False
    maybe_landed = False

    async def once() -> str:
        nonlocal must_ask_first, maybe_landed
        if must_ask_first:
            # Still in doubt while this fails: the next try asks again, never resends blindly.
            known = await http.remote_job(prompt_id)
            if known.status is not RemoteStatus.UNKNOWN:
                log.info("prompt %s reached the server despite a failed answer (%s)", prompt_id, known.status)
                return prompt_id
            must_ask_first = False
        try:
            return await http.submit(graph, prompt_id=prompt_id, client_id=client_id, extra_data=extra_data)
        except ComfyUnavailableError as exc:
            must_ask_first = True
            maybe_landed = maybe_landed or not isinstance(exc, ComfyUnreachableError)
            raise

    try:
        return await retry(
            once,
            what=f"submitting prompt {prompt_id} to {http.base_url} (asked about before any resend)",
            retryable=lambda exc: isinstance(exc, ComfyUnavailableError),
            attempts=attempts,
            backoff=backoff,
            on_retry=http.count_retry,
        )
    except ComfyUnavailableError as exc:
        if maybe_landed:
            # An earlier attempt may have reached the server: not "certainly not sent", and not "failed" either.
            if doubt_ok:
                log.warning(
                    "prompt %s may have reached %s (%s); following it as submitted", prompt_id, http.base_url, exc
                )
                return None
            raise ComfyUnavailableError(f"prompt {prompt_id} may have reached {http.base_url}: {exc}") from exc
        raise


async def cancel_remote(http: ComfyHTTP, prompt_id: str, *, confirm_timeout: float = 10.0) -> RemoteJob:
    """Cancel ``prompt_id`` without touching anyone else's job; returns the server's final word on it.

    The result's status is CANCELLED (interrupted), UNKNOWN (removed from the queue before it ran), or a
    terminal status if the job finished before the cancel landed.
    """
    verdict = await http.cancel_job(prompt_id)
    if verdict is None:
        await _legacy_cancel(http, prompt_id)
    deadline = asyncio.get_running_loop().time() + confirm_timeout
    while True:
        job = await http.remote_job(prompt_id)
        if job.status.is_terminal or job.status is RemoteStatus.UNKNOWN:
            return job
        if asyncio.get_running_loop().time() > deadline:
            return job
        await asyncio.sleep(0.1)


async def _legacy_cancel(http: ComfyHTTP, prompt_id: str) -> None:
    queue = await http.queue()
    if prompt_id in queue.pending:
        await http.delete_from_queue([prompt_id])
        queue = await http.queue()
    # Re-read right before interrupting: an old server's /interrupt stops whatever is running.
    if prompt_id in queue.running:
        await http.interrupt(prompt_id)
    elif prompt_id not in queue.pending:
        log.info("prompt %s was neither queued nor running when cancelled", prompt_id)
