"""Pure renderers: data in, Discord message parts (embed dicts, text) out.

Rules: no nextcord, no I/O, no clock reads (callers pass ``now``). Every string respects Discord's limits
(embed description ≤4096, field value ≤1024, title ≤256), so a renderer can never make a request fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from discomfy.config import LimitSettings

EMBED_COLOUR = 0x5865F2
OK_COLOUR = 0x57F287
BAD_COLOUR = 0xED4245


@dataclass(frozen=True)
class ServerStatus:
    url: str
    up: bool
    version: str = ""
    queue_size: int = 0
    error: str = ""


def message_link(guild_id: int | None, channel_id: int, message_id: int | None) -> str | None:
    if message_id is None:
        return None
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def status_embed(
    servers: Sequence[ServerStatus], *, uptime_seconds: float, queued_jobs: int | None = None
) -> dict[str, Any]:
    up = sum(1 for s in servers if s.up)
    fields = []
    for i, server in enumerate(servers[:20], start=1):
        if server.up:
            value = f"🟢 up · ComfyUI {server.version} · queue {server.queue_size}"
        else:
            value = f"🔴 down · {server.error or 'no answer'}"
        fields.append({"name": truncate(f"Server {i}", 256), "value": truncate(value, 1024), "inline": False})
    return {
        "title": "discomfy status",
        "description": truncate(
            f"**{up}/{len(servers)}** ComfyUI servers up"
            + (f" · **{queued_jobs}** jobs queued or running" if queued_jobs is not None else "")
            + f"\nUptime {format_duration(uptime_seconds)}",
            4096,
        ),
        "color": OK_COLOUR if up else BAD_COLOUR,
        "fields": fields,
    }


def help_embed(limits: LimitSettings) -> dict[str, Any]:
    commands = (
        "`/generate` — make images from a prompt; a live progress message shows the steps, with **Cancel**.\n"
        "`/animate` — make a short video from a picture you upload (and a motion prompt).\n"
        "`/jobs` — your queued and running jobs.\n"
        "`/show` — post a finished job's result again.\n"
        "`/preset` — save a result's settings under a name, run them again, share them with this server.\n"
        "`/status` — the ComfyUI servers and our queue.\n"
        "`/help` — this page."
    )
    buttons = (
        "**Upscale** · **Animate** (image → video) · **Reroll** (new seed) · **Edit** (change the prompt) · "
        "**Extend** (a video, continued from its last frame) — "
        "anyone may press these on any result, in the server it was made in.\n"
        "**Info** — the workflow, every parameter and the seed, only for you.\n"
        "**Cancel** / **Delete** — only the job's owner or members with Manage Messages; Delete removes only "
        "that result's message."
    )
    your_limits = (
        f"{limits.commands_per_minute} commands or buttons per minute · "
        f"{limits.max_jobs_per_user} jobs of yours queued or running at once · "
        f"prompts up to {limits.max_prompt_length} characters."
    )
    return {
        "title": "discomfy — help",
        "color": EMBED_COLOUR,
        "fields": [
            {"name": "Commands", "value": truncate(commands, 1024), "inline": False},
            {"name": "Buttons on results", "value": truncate(buttons, 1024), "inline": False},
            {"name": "Your limits", "value": truncate(your_limits, 1024), "inline": False},
        ],
    }
