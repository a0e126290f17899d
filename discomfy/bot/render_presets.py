"""Pure renderers of presets: the ``/preset list`` embed and the short answers of ``/preset``.

Rules: no nextcord, no I/O. What members wrote (names, prompts, workflow names) is escaped with
``escape_user_text`` and cut; every string stays inside Discord's embed limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from discomfy.bot.render import EMBED_COLOUR, truncate
from discomfy.bot.render_job import escape_user_text
from discomfy.jobs.presets import MAX_LISTED, Preset

#: Characters of a preset's prompt shown in a list line.
PROMPT_SHOWN = 60
#: A field's value holds 1024 characters; this leaves room for the "… and N more" line.
FIELD_ROOM = 1000


def preset_line(preset: Preset, *, owner: bool) -> str:
    """One list line: name, workflow, the start of its prompt; who shared it (``owner``) or that it is shared."""
    prompt = preset.params.get("prompt")
    parts = [f"**{escape_user_text(preset.name, 40)}** — {escape_user_text(preset.workflow, 40)}"]
    if isinstance(prompt, str) and prompt.strip():
        parts.append(escape_user_text(prompt, PROMPT_SHOWN))
    if "seed" in preset.params:
        parts.append("seed kept")
    if owner:
        parts.append(f"by <@{preset.owner_id}>")
    elif preset.shared:
        parts.append("shared")
    return " · ".join(parts)


def presets_embed(mine: Sequence[Preset], shared: Sequence[Preset], *, most: int) -> dict[str, Any]:
    """``/preset list``: the member's presets in this server (at most ``MAX_LISTED``, then a count of the rest is
    not known: "and more"), and those others shared here."""
    fields = []
    for title, presets, owner in (("Yours", mine, False), ("Shared in this server", shared, True)):
        fields.append({"name": title, "value": _lines(presets, owner=owner), "inline": False})
    return {
        "title": "Presets",
        "description": truncate(
            f"Run one with `/preset use name` (and a new prompt if you like). You may keep {most} here.", 4096
        ),
        "color": EMBED_COLOUR,
        "fields": fields,
    }


def _lines(presets: Sequence[Preset], *, owner: bool) -> str:
    """Whole lines only, within a field's 1024 characters (an escape or a mention is never cut in half)."""
    lines: list[str] = []
    used = 0
    for n, preset in enumerate(presets[:MAX_LISTED]):
        line = preset_line(preset, owner=owner)
        if used + len(line) + 1 > FIELD_ROOM:
            lines.append(f"… and {len(presets) - n}{'+' if len(presets) > MAX_LISTED else ''} more")
            return "\n".join(lines)
        lines.append(line)
        used += len(line) + 1
    if len(presets) > MAX_LISTED:
        lines.append("… and more")
    return "\n".join(lines) or "none"


def saved_words(preset: Preset) -> str:
    """The answer to a saved preset (only its maker sees it)."""
    seed = " with its seed" if "seed" in preset.params else " (a new seed each time)"
    return (
        f"Saved the preset **{escape_user_text(preset.name, 40)}** ({escape_user_text(preset.workflow, 40)}{seed}). "
        f"Run it with `/preset use`; share it with this server with `/preset share`."
    )
