"""The one place that turns an exception met while answering a Discord interaction into a message.

How it works: ``report_failure(interaction, exc)`` picks the text — a ``UserError``'s own ``user_message``, a
``DiscomfyError``'s short honest one, or, for anything unexpected, a generic sentence with a short reference id
that is also logged with the full traceback — and sends it ephemerally, as a first response when the
interaction has not been answered yet, else as a follow-up.

Never: show a traceback, an internal URL or the bot token to a user; raise (a failure to report is logged).
"""

from __future__ import annotations

import logging
from typing import Any

import nextcord

from discomfy.errors import DiscomfyError, UserError, reference_id

log = logging.getLogger(__name__)


def failure_text(exc: BaseException) -> tuple[str, str | None]:
    """The text a user sees for ``exc``, and the reference id when it was unexpected (and must be logged)."""
    if isinstance(exc, UserError | DiscomfyError):
        return exc.user_message, None
    ref = reference_id()
    return (
        f"Something went wrong on our side (reference `{ref}`). Please try again; if it keeps happening, "
        "tell an admin this reference.",
        ref,
    )


async def report_failure(interaction: nextcord.Interaction[Any], exc: BaseException, *, doing: str = "") -> None:
    text, ref = failure_text(exc)
    if ref is not None:
        log.error("unexpected error %s while %s", ref, doing or "answering an interaction", exc_info=exc)
    elif not isinstance(exc, UserError):
        log.warning("%s failed: %s", doing or "an interaction", exc)
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except nextcord.HTTPException as send_exc:
        log.warning("could not tell the user about a failure (%s): %s", text[:80], send_exc)


async def delete_thinking(interaction: nextcord.Interaction[Any]) -> None:
    """A refusal met after deferring: remove the public "thinking…" message before saying why privately."""
    try:
        await interaction.delete_original_message()
    except nextcord.HTTPException as exc:
        log.info("could not remove the deferred message: %s", exc)
