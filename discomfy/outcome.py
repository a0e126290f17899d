"""Why a job ended badly, as a kind that travels with the snapshot and the job row; words are made at the edge.

How it works: whoever sees a job fail names the kind once — the progress tracker (a node raised at ComfyUI), the
engine (from the exception's ``failure`` attribute: lost, unreachable, rejected, …), the job runner (no output,
an internal error) — and passes a ``detail`` beside it where a user can act on it (ComfyUI's own reason, a
reference id). Lower layers never compare or build user text to tell failures apart; the Discord renderer
(``bot/render_job.py``) turns ``(Failure, detail)`` into "what happened / what to do".

Never: carry a server URL, a file path or a secret in a detail meant for users (only ComfyUI's node message,
the option named by a rejection, or a reference id).
"""

from __future__ import annotations

from enum import StrEnum


class Failure(StrEnum):
    #: A node raised while ComfyUI ran the graph (``execution_error``); detail: "NodeType: message".
    WORKFLOW = "workflow"
    #: ComfyUI refused the graph (``POST /prompt`` answered 400); detail: the option at fault, in words.
    REJECTED = "rejected"
    #: The server forgot the job after it had started (a restart of ComfyUI).
    LOST = "lost"
    #: No server could be reached for longer than we wait.
    UNREACHABLE = "unreachable"
    #: Servers are up but none has the model files the workflow needs; detail: their names. An admin must act.
    MISSING_MODEL = "missing_model"
    #: Any other trouble talking to ComfyUI (garbled answers, 5xx that would not stop).
    SERVER = "server"
    #: The workflow finished without saving a picture or a video.
    NO_OUTPUT = "no_output"
    #: The server finished, but its files could not be fetched.
    FETCH_FAILED = "fetch_failed"
    #: A result file is larger than we take (the download cap, ``comfyui.max_download_mb``) or has more pixels
    #: than we decode (a decompression bomb); nothing of it was kept. Detail: none (a reference id at most).
    TOO_LARGE = "too_large"
    #: The server's files are not pictures or videos by their bytes (whatever their names claim): none was
    #: delivered. Detail: none (a reference id at most).
    BAD_OUTPUT = "bad_output"
    #: After a restart of the bot, the job could not be picked up again; detail: why, or a reference id.
    NOT_RESUMED = "not_resumed"
    #: Our own storage failed (disk full, database); detail: a reference id.
    STORAGE = "storage"
    #: Extend: the video to continue is no longer stored, so the new part cannot be joined to it.
    SOURCE_GONE = "source_gone"
    #: A bug; detail: the reference id that is also in the log with the traceback.
    INTERNAL = "internal"
