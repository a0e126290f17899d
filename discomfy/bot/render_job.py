"""Pure renderers for a job's message: the live progress message and the result message, as ``RenderedMessage``.

How it works: ``render_progress(job, snapshot, ...)`` and ``render_result(job, uploads, ...)`` return a
``RenderedMessage`` — the whole state of one Discord message (content, embeds and components as Discord JSON,
the files it should carry). The message editor sends it; it never needs to know what a job is.

- Phase in words, from the job's state first (ours) and the tracker's snapshot second (ComfyUI's): waiting in
  our queue → sending → waiting at the image server (jobs ahead) → running → finishing; then cancelled,
  failed (what happened, what to do), lost. A terminal job state always wins over the snapshot.
- The bar and percent are floored from ``snapshot.fraction`` (never more than it says; the tracker never moves
  it backwards, so neither does the bar). ETA is a ``<t:UNIX:R>`` timestamp: Discord counts it down without edits.
- The preview (already shrunk, by ``preview.shrink_preview`` in a thread) is attached as ``preview.jpg`` and shown
  as the embed's image. The caller passes the latest preview every time; the editor does not re-upload bytes the
  message already has.
- Results: files are never referenced from the embed, so a batch shows as Discord's gallery and a video gets
  its player. Buttons: per-output **Upscale**/**Animate** (``U1``…/``A1``… for a batch, at most 10 outputs), then
  **Reroll**, **Edit prompt**, **Info**, **Delete** for the whole job. Videos get no Upscale/Animate: animating a
  video is meaningless, and upscaling one needs a per-frame workflow we do not ship (add the button with it).
- A video job's progress names its stages: "sampling · step x/y · N frames", then "<node title> · frame x/y" for
  each node that works frame by frame (an interpolation's frames are its output frames written, see
  ``comfy/graph_info.py``), then — while we transcode the result ourselves — ``render_encoding``'s
  "encoding frame x/y". The sampler's last preview stays on the message through the frame-wise stages (they
  send none); the encoding message has none.
- User text (prompt, workflow, error) is escaped: markdown cannot break the layout and ``@everyone`` or
  ``<@id>`` never mention anyone (and the editor sends ``allowed_mentions: {"parse": []}`` as well).

Never: import nextcord or asyncio, do I/O, read a clock (``now`` is a UNIX time passed in), or exceed a Discord
limit (content 2000, title 256, description 4096, field value 1024, embed total 6000, 10 files, 5×5 buttons,
custom_id 100) — ``check_limits`` states them and the property tests hold the renderers to them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from discomfy.bot import custom_ids
from discomfy.bot.custom_ids import ComponentAction
from discomfy.bot.render import BAD_COLOUR, EMBED_COLOUR, OK_COLOUR, format_duration, message_link, truncate
from discomfy.comfy.progress import Phase, Snapshot
from discomfy.jobs.state import CANCELLABLE, Job, JobKind, JobState
from discomfy.outcome import Failure

__all__ = [
    "PREVIEW_FILENAME",
    "RenderedMessage",
    "UploadLike",
    "check_limits",
    "escape_user_text",
    "render_encoding",
    "render_progress",
    "render_result",
]

PREVIEW_FILENAME = "preview.jpg"
BAR_CELLS = 20
PROMPT_SHOWN = 1200  # raw characters; escaped at most doubles, well under the description's 4096
MAX_FILES = 10  # Discord: attachments per message
MAX_OUTPUT_BUTTONS = 10  # two rows of U, two of A, one for the job: Discord's 5 rows
WAIT_COLOUR = 0x99AAB5
GREY_COLOUR = 0x747F8D

BUTTON_PRIMARY, BUTTON_SECONDARY, BUTTON_SUCCESS, BUTTON_DANGER = 1, 2, 3, 4


class UploadLike(Protocol):
    """A file to deliver (``discomfy.media.fit.Upload`` is one)."""

    @property
    def filename(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def mime(self) -> str: ...


@dataclass(frozen=True)
class RenderedMessage:
    """The whole state of one message. ``files`` are attachments to upload; ``keep_attachments`` says whether
    the attachments the message already has stay (``False``: they are replaced by ``files``, or removed)."""

    content: str = ""
    embeds: tuple[dict[str, Any], ...] = ()
    components: tuple[dict[str, Any], ...] = ()
    files: tuple[tuple[str, bytes], ...] = ()
    keep_attachments: bool = False


# --- escaping --------------------------------------------------------------------------------------------------

_MARKDOWN = re.compile(r"([\\*_~`|>#\-\[\]()<])")
_MENTION = re.compile(r"@(everyone|here)", re.IGNORECASE)


def escape_user_text(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` raw characters, with markdown escaped and mentions defused.

    Cut first, then escape, so an escape is never split; the result is at most ``2 * limit + 1`` long.
    """
    one_line = " ".join(text.split())
    cut = truncate(one_line, limit)
    escaped = _MARKDOWN.sub(r"\\\1", cut)
    # A zero-width space after '@' keeps "@everyone" readable and harmless; '<' is escaped above, so
    # "<@123>" and "<#123>" are shown as text, not as mentions.
    return _MENTION.sub("@\u200b\\1", escaped)


# --- progress --------------------------------------------------------------------------------------------------


SERVER_DOWN_TEXT = (
    "No image server is answering right now. Your job keeps its place and starts as soon as one is back; "
    "press Cancel if you'd rather not wait."
)


def _bar(fraction: float) -> tuple[str, int]:
    fraction = min(1.0, max(0.0, fraction)) if math.isfinite(fraction) else 0.0
    percent = math.floor(fraction * 100)
    filled = math.floor(fraction * BAR_CELLS)
    return "`" + "█" * filled + "░" * (BAR_CELLS - filled) + "`", percent


def _count(value: float | None, maximum: float | None) -> str | None:
    if value is None or maximum is None or maximum <= 0:
        return None
    return f"{int(min(value, maximum))}/{int(maximum)}"


def _phase_words(
    job: Job, snapshot: Snapshot | None, our_queue_position: int | None, servers_down: bool = False
) -> tuple[str, int]:
    """A title and a colour for where the job is. ``our_queue_position``: 1 = next in line."""
    state = job.state
    if state is JobState.CANCELLED or (snapshot is not None and snapshot.phase is Phase.CANCELLED):
        return "⏹️ Cancelled", GREY_COLOUR
    if state is JobState.FAILED or (snapshot is not None and snapshot.phase is Phase.FAILED):
        return "❌ Failed", BAD_COLOUR
    if state is JobState.LOST:
        return "❓ Lost", BAD_COLOUR
    if state is JobState.DELIVERED:
        return "✅ Done", OK_COLOUR
    if state is JobState.WAITING:
        if servers_down:
            return "⏳ Waiting · the image server is not answering", WAIT_COLOUR
        if our_queue_position and our_queue_position > 1:
            ahead = "1 job" if our_queue_position == 2 else f"{our_queue_position - 1} jobs"
            return f"⏳ Waiting in our queue · {ahead} ahead", WAIT_COLOUR
        return "⏳ Waiting in our queue · next", WAIT_COLOUR
    if state is JobState.SUBMITTING:
        return "📨 Sending to the image server", WAIT_COLOUR
    if state is JobState.DELIVERING or (snapshot is not None and snapshot.phase is Phase.DONE):
        return "📦 Finishing · uploading the result", EMBED_COLOUR
    if snapshot is None or snapshot.phase is Phase.QUEUED or state is JobState.QUEUED:
        position = snapshot.queue_position if snapshot is not None else None
        if position:
            ahead = "1 job" if position == 1 else f"{position} jobs"
            return f"⏳ Waiting at the image server · {ahead} ahead", WAIT_COLOUR
        return "⏳ Waiting at the image server", WAIT_COLOUR
    return "⚙️ Running", EMBED_COLOUR


def _prompt_line(job: Job) -> str:
    prompt = job.params.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        made_from = {"upscale": "*Upscale of an earlier picture*", "animate": "*Animation of an earlier picture*"}
        return made_from.get(job.action.value, "*(no prompt)*")
    return "> " + escape_user_text(prompt, PROMPT_SHOWN)


_TRY_AGAIN = "Try again, perhaps with other options; if it keeps failing, tell a moderator the job id below."
_TELL_ADMIN = "Try again in a moment; if it keeps happening, tell an admin the reference."
#: What a user reads for each kind of failure (``outcome.Failure``): what happened, how its detail is added (the
#: detail it came with: ComfyUI's reason, the option at fault, a reference id), what to do.
FAILURE_WORDS: dict[Failure, tuple[str, str, str]] = {
    Failure.WORKFLOW: ("The workflow failed on the image server", ": {}", _TRY_AGAIN),
    Failure.REJECTED: ("The image server refused this job", ": {}", _TRY_AGAIN),
    Failure.LOST: (
        "The image server restarted or went away while working on this, and the job was lost",
        "",
        "Nothing more will arrive for it: run the command again.",
    ),
    Failure.UNREACHABLE: (
        "The image server could not be reached for too long",
        "",
        "Try again in a few minutes; if it keeps happening, tell an admin.",
    ),
    Failure.MISSING_MODEL: (
        "No image server has the model files this workflow needs",
        " ({})",
        "Waiting will not help: ask an admin to install them or pick another workflow.",
    ),
    Failure.SERVER: ("The image server had a problem with this job", "", _TRY_AGAIN),
    Failure.NO_OUTPUT: ("The workflow finished without saving any picture or video", "", _TRY_AGAIN),
    Failure.FETCH_FAILED: (
        "The image server finished, but its result could not be fetched from it",
        "",
        "Run the command again.",
    ),
    Failure.TOO_LARGE: (
        "The image server made a result too large to deliver, so nothing of it was kept",
        " (reference {})",
        "Try smaller settings (size, length); if it keeps happening, tell an admin.",
    ),
    Failure.BAD_OUTPUT: (
        "The image server sent files that are not pictures or videos, so none was delivered",
        " (reference {})",
        _TELL_ADMIN,
    ),
    Failure.NOT_RESUMED: ("This job could not be resumed after the bot restarted", " ({})", "Run the command again."),
    Failure.STORAGE: ("The bot could not save this job", " (reference {})", _TELL_ADMIN),
    Failure.INTERNAL: ("Something went wrong on our side", " (reference {})", _TELL_ADMIN),
    Failure.SOURCE_GONE: (
        "The video to extend is no longer kept on the bot's server, so the new part could not be joined to it",
        "",
        "Press Reroll on it for a new video, or Extend a newer one.",
    ),
}


def failure_words(failure: Failure | None, detail: str | None) -> tuple[str, str]:
    """(what happened, what to do) for a failure kind and its (already escaped) detail."""
    what, with_detail, todo = FAILURE_WORDS[failure or Failure.SERVER]
    if detail and with_detail:
        what += with_detail.format(detail)
    return what.rstrip(".") + ".", todo


#: The ETA is shown rounded up to this many seconds.
ETA_STEP = 5


def _failure_text(job: Job, snapshot: Snapshot | None) -> str:
    if job.state is JobState.CANCELLED or (snapshot is not None and snapshot.phase is Phase.CANCELLED):
        return "Cancelled. Nothing more will be made for this job."
    failure = job.failure or (snapshot.failure if snapshot is not None else None)
    if failure is None and job.state is JobState.LOST:
        failure = Failure.LOST
    detail = job.error or (snapshot.error if snapshot is not None else None)
    what, todo = failure_words(failure, escape_user_text(detail, 600) if detail else None)
    return f"**What happened:** {what}\n**What to do:** {todo}"


def _footer(job: Job) -> dict[str, str]:
    return {"text": f"job {job.id}"}


def render_progress(
    job: Job,
    snapshot: Snapshot | None,
    *,
    our_queue_position: int | None,
    now: float,
    preview_jpeg: bytes | None = None,
    servers_down: bool = False,
) -> RenderedMessage:
    """The live progress message of ``job`` (``snapshot`` is ``None`` before ComfyUI has the prompt).

    ``our_queue_position``: the job's place in our own queue, 1 = next. ``servers_down``: no image server
    answers now, so a waiting job says it waits for one to come back (it keeps its place).
    """
    waits_for_server = servers_down and job.state is JobState.WAITING
    title, colour = _phase_words(job, snapshot, our_queue_position, waits_for_server)
    failed = job.state in (JobState.FAILED, JobState.CANCELLED, JobState.LOST) or (
        snapshot is not None and snapshot.phase in (Phase.FAILED, Phase.CANCELLED)
    )
    lines = [_prompt_line(job)]
    fields: list[dict[str, Any]] = [
        {"name": "Workflow", "value": escape_user_text(job.workflow, 200) or "—", "inline": True}
    ]
    if failed:
        lines.append(_failure_text(job, snapshot))
    else:
        if waits_for_server:
            lines.append(SERVER_DOWN_TEXT)
        bar, percent = _bar(snapshot.fraction if snapshot is not None else 0.0)
        lines.append(f"{bar} **{percent}%**")
        detail = _running_detail(job, snapshot) if snapshot is not None and snapshot.phase is Phase.RUNNING else ""
        if detail:
            lines.append(detail)
        # A Discord timestamp counts by itself in every client: an unchanged state draws the same, so its edit is
        # skipped, and nothing shown goes stale while an edit waits its turn.
        fields.append({"name": "Started", "value": f"<t:{math.floor(job.created_at)}:R>", "inline": True})
        if snapshot is not None and snapshot.phase is Phase.RUNNING and snapshot.eta_seconds is not None:
            eta = now + max(0.0, snapshot.eta_seconds) if math.isfinite(snapshot.eta_seconds) else None
            if eta is not None:
                # In steps of ETA_STEP seconds: an estimate that wobbles by a second is not worth an edit.
                shown = math.ceil(eta / ETA_STEP) * ETA_STEP
                fields.append({"name": "Done", "value": f"<t:{shown}:R>", "inline": True})
    embed: dict[str, Any] = {
        "title": truncate(title, 256),
        "description": truncate("\n".join(lines), 4096),
        "color": colour,
        "fields": fields,
        "footer": _footer(job),
    }
    files: tuple[tuple[str, bytes], ...] = ()
    if preview_jpeg and not failed and job.state is not JobState.DELIVERED:
        embed["image"] = {"url": f"attachment://{PREVIEW_FILENAME}"}
        files = ((PREVIEW_FILENAME, preview_jpeg),)
    components: tuple[dict[str, Any], ...] = ()
    if job.state in CANCELLABLE and not failed and (snapshot is None or not snapshot.is_terminal):
        cancel = _button("Cancel", custom_ids.encode(ComponentAction.CANCEL, job.id), BUTTON_DANGER, "✖️")
        components = (_row([cancel]),)
    return RenderedMessage(embeds=(embed,), components=components, files=files, keep_attachments=False)


def _running_detail(job: Job, snapshot: Snapshot) -> str:
    """The running stage in words. A video job names its stages: sampling (its steps, and how many frames it
    makes), then each node that works frame by frame as "<node title> · frame x/y"; any other job (or a video
    node that counts neither) shows the node's title and whatever it counts."""
    parts: list[str] = []
    title = f"**{escape_user_text(snapshot.current_title, 100)}**" if snapshot.current_title else None
    steps = _count(snapshot.step_value, snapshot.step_max)
    frames = _count(snapshot.frames_value, snapshot.frames_max)
    if job.kind is JobKind.VIDEO and frames is not None:
        parts += [*([title] if title else []), f"frame {frames}"]
    elif job.kind is JobKind.VIDEO and steps is not None:
        # A video sampler denoises every frame at once and reports steps only: say how many frames it makes.
        parts += ["sampling", f"step {steps}"]
        if (wanted := _frames_wanted(job)) is not None:
            parts.append(f"{wanted} frames")
    else:
        parts += [*([title] if title else []), *([f"step {steps}"] if steps else [])]
        parts += [f"frame {frames}"] if frames else []
    if snapshot.nodes_total:
        parts.append(f"node {min(snapshot.nodes_done + 1, snapshot.nodes_total)}/{snapshot.nodes_total}")
    return " · ".join(parts)


def _frames_wanted(job: Job) -> int | None:
    frames = job.params.get("frames")
    return frames if isinstance(frames, int) and not isinstance(frames, bool) and frames > 0 else None


def render_encoding(job: Job, done: int, total: int) -> RenderedMessage:
    """The message while we encode a video result to MP4 ourselves (``media.fit``): the image server is done,
    so the overall bar is full, and the stage says "encoding frame x/y". The result replaces it."""
    lines = [_prompt_line(job), f"{_bar(1.0)[0]} **100%**"]
    if (frames := _count(done, total)) is not None:
        lines.append(f"encoding frame {frames}")
    fields: list[dict[str, Any]] = [
        {"name": "Workflow", "value": escape_user_text(job.workflow, 200) or "—", "inline": True},
        {"name": "Started", "value": f"<t:{math.floor(job.created_at)}:R>", "inline": True},
    ]
    embed: dict[str, Any] = {
        "title": "📦 Finishing · encoding the video",
        "description": truncate("\n".join(lines), 4096),
        "color": EMBED_COLOUR,
        "fields": fields,
        "footer": _footer(job),
    }
    return RenderedMessage(embeds=(embed,))


# --- result ----------------------------------------------------------------------------------------------------


def _button(label: str, custom_id: str, style: int, emoji: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": 2, "style": style, "label": label, "custom_id": custom_id}
    if emoji:
        button["emoji"] = {"name": emoji}
    return button


def _row(buttons: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"type": 1, "components": list(buttons)}


def _chunks(buttons: list[dict[str, Any]], size: int = 5) -> list[list[dict[str, Any]]]:
    return [buttons[i : i + size] for i in range(0, len(buttons), size)]


#: The actions on one output, with their button's label, short letter and emoji.
OUTPUT_ACTIONS = ((ComponentAction.UPSCALE, "Upscale", "U", "🔍"), (ComponentAction.ANIMATE, "Animate", "A", "🎬"))
ALL_OUTPUT_ACTIONS = frozenset(action for action, *_ in OUTPUT_ACTIONS)


def result_components(
    job: Job, uploads: Sequence[UploadLike], offers: frozenset[ComponentAction] = ALL_OUTPUT_ACTIONS
) -> tuple[dict[str, Any], ...]:
    """The buttons under a result: per-output Upscale/Animate rows (only the ``offers`` that a loaded workflow can
    run), then the job's own row.

    A video job's result (or a result of videos only) gets its own row only: Reroll (same options, new seed),
    Edit prompt when it took a (motion) prompt, Extend (continue from the last frame: only when ``offers`` has it,
    i.e. the job's workflow can, and the result is one video), Info, Delete. Upscale and Animate do not apply to a
    video, even one delivered as an animated image.
    """
    video = job.kind is JobKind.VIDEO
    images = [
        i for i, upload in enumerate(uploads[:MAX_OUTPUT_BUTTONS]) if upload.mime.startswith("image/") and not video
    ]
    actions = [entry for entry in OUTPUT_ACTIONS if entry[0] in offers]
    rows: list[list[dict[str, Any]]] = []
    if len(uploads) == 1 and images and actions:
        rows.append(
            [
                _button(label, custom_ids.encode(action, job.id, 0), BUTTON_SECONDARY, emoji)
                for action, label, _, emoji in actions
            ]
        )
    elif images:
        for action, _, letter, _ in actions:
            buttons = [
                _button(f"{letter}{i + 1}", custom_ids.encode(action, job.id, i), BUTTON_SECONDARY) for i in images
            ]
            rows.extend(_chunks(buttons))
    own = [_button("Reroll", custom_ids.encode(ComponentAction.REROLL, job.id), BUTTON_PRIMARY, "🎲")]
    if isinstance(job.params.get("prompt"), str):  # upscale and video workflows take no prompt to edit
        own.append(_button("Edit prompt", custom_ids.encode(ComponentAction.EDIT, job.id), BUTTON_SECONDARY, "✏️"))
    if video and ComponentAction.EXTEND in offers and len(uploads) == 1 and uploads[0].mime.startswith("video/"):
        own.append(_button("Extend", custom_ids.encode(ComponentAction.EXTEND, job.id, 0), BUTTON_SECONDARY, "⏩"))
    own += [
        _button("Info", custom_ids.encode(ComponentAction.INFO, job.id), BUTTON_SECONDARY, "ℹ️"),
        _button("Delete", custom_ids.encode(ComponentAction.DELETE, job.id), BUTTON_DANGER, "🗑️"),
    ]
    rows.append(own)
    return tuple(_row(row) for row in rows)


def _size(params: Mapping[str, Any]) -> str | None:
    width, height = params.get("width"), params.get("height")
    if isinstance(width, int) and isinstance(height, int) and not isinstance(width, bool):
        return f"{width}×{height}"
    return None


def render_result(
    job: Job,
    uploads: Sequence[UploadLike],
    *,
    notes: Sequence[str] = (),
    now: float,
    offers: frozenset[ComponentAction] = ALL_OUTPUT_ACTIONS,
) -> RenderedMessage:
    """The result message: what was made and how, the files, and the buttons under them (``offers``: the actions
    on an output that a loaded workflow can run)."""
    shown = list(uploads[:MAX_FILES])
    videos = sum(1 for u in shown if u.mime.startswith("video/"))
    images = sum(1 for u in shown if u.mime.startswith("image/"))
    if not shown:
        what = "nothing (the workflow made no files)"
    elif videos == len(shown):
        what = "a video" if videos == 1 else f"{videos} videos"
    elif images == len(shown):
        what = "an image" if images == 1 else f"{images} images"
    else:
        what = f"{len(shown)} files"
    lines = [_prompt_line(job), f"<@{int(job.owner_id)}> · {what}"]
    if len(uploads) > MAX_FILES:
        lines.append(f"Only the first {MAX_FILES} of {len(uploads)} files fit in one message.")
    fields: list[dict[str, Any]] = [
        {"name": "Workflow", "value": escape_user_text(job.workflow, 200) or "—", "inline": True}
    ]
    if job.seed is not None:
        fields.append({"name": "Seed", "value": f"`{job.seed}`", "inline": True})
    if (size := _size(job.params)) is not None:
        fields.append({"name": "Size", "value": size, "inline": True})
    took = format_duration(now - job.created_at)
    if job.started_at is not None:
        took += f" ({format_duration(now - job.started_at)} running)"
    fields.append({"name": "Time taken", "value": took, "inline": True})
    if notes:
        text = "\n".join(f"• {escape_user_text(note, 200)}" for note in notes[:8])
        fields.append({"name": "Notes", "value": truncate(text, 1024), "inline": False})
    embed = {
        "title": "✅ Done",
        "description": truncate("\n".join(lines), 4096),
        "color": OK_COLOUR,
        "fields": fields,
        "footer": _footer(job),
    }
    files = tuple((truncate(u.filename, 200) or f"output-{i}", u.data) for i, u in enumerate(shown))
    return RenderedMessage(
        embeds=(embed,), components=result_components(job, shown, offers), files=files, keep_attachments=False
    )


# --- limits ----------------------------------------------------------------------------------------------------


def check_limits(message: RenderedMessage) -> list[str]:
    """Every Discord limit ``message`` breaks (empty: it can be sent). Used by the tests and by the editor's log."""
    problems: list[str] = []
    if len(message.content) > 2000:
        problems.append("content over 2000")
    if len(message.embeds) > 10:
        problems.append("more than 10 embeds")
    total = 0
    for embed in message.embeds:
        title, description = embed.get("title", ""), embed.get("description", "")
        footer = embed.get("footer", {}).get("text", "")
        fields = embed.get("fields", [])
        problems += ["title over 256"] * (len(title) > 256) + ["description over 4096"] * (len(description) > 4096)
        problems += ["footer over 2048"] * (len(footer) > 2048) + ["more than 25 fields"] * (len(fields) > 25)
        total += len(title) + len(description) + len(footer)
        for field in fields:
            if len(field["name"]) > 256 or len(field["value"]) > 1024 or not field["value"]:
                problems.append(f"field {field['name'][:20]!r} out of bounds")
            total += len(field["name"]) + len(field["value"])
    if total > 6000:
        problems.append("embeds over 6000 in total")
    if len(message.components) > 5:
        problems.append("more than 5 action rows")
    for row in message.components:
        if not 1 <= len(row["components"]) <= 5:
            problems.append("an action row without 1..5 components")
        for item in row["components"]:
            if len(item.get("custom_id", "")) > 100 or len(item.get("label", "")) > 80:
                problems.append("a custom_id over 100 or a label over 80")
    if len(message.files) > MAX_FILES:
        problems.append("more than 10 files")
    return problems


def render_info(job: Job) -> dict[str, Any]:
    """The Info embed of a job: workflow, every parameter, the seed, timings (shown only to whoever asked)."""
    params = "\n".join(
        f"**{k}**: {escape_user_text(str(v), 200)}" for k, v in sorted(job.params.items()) if k != "prompt"
    )
    fields = [
        {"name": "Workflow", "value": escape_user_text(job.workflow, 200), "inline": True},
        {"name": "State", "value": job.state.value, "inline": True},
        {"name": "Seed", "value": f"`{job.seed}`" if job.seed is not None else "—", "inline": True},
        {"name": "Parameters", "value": truncate(params or "—", 1024), "inline": False},
    ]
    times = []
    if job.started_at and job.finished_at:
        times.append(f"ran {job.finished_at - job.started_at:.1f} s")
    if job.submitted_at:
        times.append(f"queued <t:{int(job.created_at)}:R>")
    if times:
        fields.append({"name": "Timing", "value": ", ".join(times), "inline": False})
    link = message_link(job.guild_id, job.channel_id, job.message_id)
    description = escape_user_text(str(job.params.get("prompt") or ""), 3000)
    if link:
        description += f"\n[result]({link})"
    # The whole id in the footer, as on the result: `/preset save … job:` and `/show` take it.
    footer = {"text": f"job {job.id}"}
    return {"title": f"Job {job.id[:12]}", "description": description, "fields": fields, "footer": footer}
