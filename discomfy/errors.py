"""The one exception tree of discomfy.

    DiscomfyError                    base: everything we raise on purpose
    ├── ConfigError                  the configuration is wrong; carries every problem found
    │   ├── MissingTokenError        no Discord bot token was given
    │   └── WorkflowError            a workflow file or manifest is broken (workflows/model.py)
    ├── UserError                    the user asked for something we refuse; ``user_message`` is shown as is
    │   ├── BadInputError            an option or attachment is invalid (names the option and the limit)
    │   ├── PermissionDeniedError    not the owner / not allowed in this channel or role
    │   ├── RateLimitedError         too many requests; ``retry_at`` says when to try again
    │   ├── JobNotFoundError         no job with that id (jobs/store.py)
    │   └── OutputStoreError         a result could not be saved: disk full, folder unwritable (jobs/outputs_files.py)
    ├── ComfyError                   talking to a ComfyUI server went wrong
    │   ├── ComfyUnavailableError    the server cannot be reached / answered 5xx / garbage
    │   │   ├── NoServerError        no healthy server has the models a workflow needs (comfy/pool.py)
    │   │   ├── ComfyUnreachableError no connection could be made: the request was certainly not sent
    │   │   │                        (comfy/http.py)
    │   │   └── JobLostError         the server forgot our prompt (a restart); ``started`` says if it ran
    │   │                            (comfy/stream.py)
    │   ├── ComfyProtocolError       a message from the server could not be understood
    │   └── PromptRejectedError      POST /prompt answered 400; ``user_message`` names the option at fault
    ├── StartupError                 the bot cannot start: its data directory or database is unusable (app.py
    │                                raises it; run.py prints it and exits 1)
    ├── IllegalTransitionError       a job state move the state table forbids: a bug (jobs/state.py)
    ├── JobStoreError                the SQLite store failed (disk full, …) (jobs/store.py)
    ├── MediaError                   Pillow / PyAV could not read or write a file; never leaves media/ (media/errors.py)
    ├── PreviewError                 a preview picture could not be shrunk; the preview is skipped (bot/preview.py)
    ├── PacerClosedError             the channel edit pacer was closed (the bot is stopping) (bot/pacing.py)
    ├── DiscordHTTPError             Discord refused one of our message writes, or it could not be sent (bot/rest.py)
    └── MessageEditError             the final state of a Discord message could not be delivered (bot/editor.py)

Errors defined next to their adapter are drawn here too, so this stays the one picture of the tree.

Rules: library exceptions (aiohttp, websockets, nextcord) are translated into this tree in one place per
adapter, with ``raise ... from exc``. Every error that can reach a Discord user has a ``user_message``: short,
saying what happened and what to do. Errors never carry secrets (the bot token) in their text. An unexpected
error is shown with ``reference_id()``, logged next to its traceback.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from discomfy.outcome import Failure


class DiscomfyError(Exception):
    """Base of every error discomfy raises on purpose."""

    #: What a Discord user is shown. Subclasses override it; the base is deliberately vague.
    user_message: str = "Something went wrong on our side. Please try again in a moment."
    #: The kind of job failure this error means when it ends a job (``outcome.py``); the words are made at the edge.
    failure: Failure = Failure.INTERNAL
    #: A detail a user can act on, shown beside the failure's words (never a URL, a path or a secret).
    shown_detail: str | None = None


class ConfigError(DiscomfyError):
    """The configuration has one or more problems; ``problems`` lists each, with how to fix it."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))

    def report(self) -> str:
        lines = ["discomfy cannot start: the configuration has a problem."]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class MissingTokenError(ConfigError):
    """No bot token: tell a newcomer how to get one."""

    def __init__(self) -> None:
        super().__init__(["no Discord bot token was given"])

    def report(self) -> str:
        return (
            "discomfy needs a Discord bot token to start, and none was given.\n"
            "\n"
            "  1. Open https://discord.com/developers/applications and create an application.\n"
            "  2. Under 'Bot', press 'Reset Token' and copy the token.\n"
            "  3. Set it in the environment before starting the bot:\n"
            "       export DISCORD_TOKEN='your-token-here'\n"
            '     (or put `token = "..."` under [discord] in discomfy.toml, and keep that file private).\n'
            "  4. Invite the bot with the 'bot' and 'applications.commands' scopes; see README.md.\n"
        )


class UserError(DiscomfyError):
    """A refusal whose text is shown to the user as is."""

    def __init__(self, user_message: str) -> None:
        self.user_message = user_message
        super().__init__(user_message)


class BadInputError(UserError):
    """An option, attachment or modal value is invalid."""


class PermissionDeniedError(UserError):
    """The user may not do this here."""


class RateLimitedError(UserError):
    """The user has to wait; ``retry_at`` is a UNIX time."""

    def __init__(self, user_message: str, retry_at: float) -> None:
        super().__init__(user_message)
        self.retry_at = retry_at


class ComfyError(DiscomfyError):
    """Talking to a ComfyUI server went wrong."""

    user_message = "The image server had a problem with this job. Please try again."
    failure = Failure.SERVER


class ComfyUnavailableError(ComfyError):
    """A ComfyUI server could not be reached, timed out, or answered with an error or garbage."""

    user_message = "The image server is not reachable right now. Please try again in a minute."
    failure = Failure.UNREACHABLE


class ComfyProtocolError(ComfyError):
    """A message from ComfyUI could not be understood."""


class PromptRejectedError(ComfyError):
    """ComfyUI refused the graph (HTTP 400); ``body`` is its answer, ``user_message`` says why in plain words."""

    def __init__(self, user_message: str, body: object = None) -> None:
        super().__init__(user_message)
        self.user_message = f"The image server refused this job: {user_message}."
        self.shown_detail = user_message
        self.body = body

    failure = Failure.REJECTED


class StartupError(DiscomfyError):
    """The bot cannot start (its data directory or database is unusable); the text says what to fix."""


def reference_id() -> str:
    """A short id (8 hex digits) a user can quote and an admin can grep the log for; logged with the error."""
    return secrets.token_hex(4)
