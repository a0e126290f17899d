"""Who may use the bot where, how often, and with how many jobs at once.

How it works: every command and button press goes through ``check_place``: the channel allow-list, then the role
allow-list, and for anything done to a job (its buttons and forms, ``/show``) the job's own place: the guild the job
was made in, and for a job made in a direct message that same DM. ``admit(actor, now)`` adds the per-user rate
limit, a sliding window of ``commands_per_minute`` accepted actions in any 60 seconds (Cancel and Delete only take
``check_place``: they never start work). A press must also come from the job's own message (``check_origin``): the
message the job's row names, or a message of ours that carries that very button (a ``/show`` copy, the ``/jobs``
list), never someone else's message under a custom_id naming our job. Before a job is created, ``admit_job``
compares the store's ``ActiveCounts`` with the per-user and global caps. Cancel and Delete on someone's job also
need ``check_owner_or_moderator``: the job's owner, or a member with Manage Messages in that channel. Members with a
bypass role skip the rate limit and the caps (``PermissionSettings.bypass_roles``) and pass the role allow-list; the
channel allow-list applies to everyone, so the bot stays in its channels.

A refusal is a ``PermissionDeniedError`` or ``RateLimitedError`` whose ``user_message`` says what happened and
when to try again, as a Discord timestamp (``<t:UNIX:R>``, which every client counts down by itself). A refused
attempt does not count against the rate limit, so pressing again while refused never lengthens the wait.

Never: read the clock (``now`` is a UNIX time passed in, since the messages show it), do I/O, or import
nextcord: the caller turns the interaction into an ``Actor``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from discomfy.config import LimitSettings, PermissionSettings
from discomfy.errors import PermissionDeniedError, RateLimitedError
from discomfy.jobs.records import ActiveCounts
from discomfy.jobs.state import ChannelId, GuildId, Job, UserId

RATE_WINDOW = 60.0
#: Mentions listed in a refusal (Discord renders them as names; more would only be noise).
_MAX_LISTED = 5


@dataclass(frozen=True)
class Actor:
    """Who pressed or typed, where: read from the interaction by the caller."""

    user_id: UserId
    channel_id: ChannelId
    role_ids: frozenset[int] = frozenset()
    #: Discord's Manage Messages permission in this channel (from the interaction's ``member.permissions``).
    can_manage_messages: bool = False
    #: The guild the interaction came from; None in a direct message.
    guild_id: GuildId | None = None


def discord_time(unix: float) -> str:
    """A relative Discord timestamp, rounded up so it never says "now" before the wait is over."""
    return f"<t:{math.ceil(unix)}:R>"


class RateLimiter:
    """At most ``limit`` accepted actions per user in any ``window`` seconds (a sliding window log)."""

    def __init__(self, limit: int, window: float = RATE_WINDOW) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a rate limit needs limit ≥ 1 and a positive window")
        self.limit = limit
        self.window = window
        self._hits: dict[int, deque[float]] = {}
        self._calls = 0

    def hit(self, user_id: int, now: float, *, count: bool = True) -> float | None:
        """None if allowed (and counted, unless ``count`` is False); otherwise the UNIX time from which the user
        may try again."""
        self._calls += 1
        if self._calls % 1024 == 0:
            self.forget_idle(now)
        hits = self._hits.setdefault(user_id, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return hits[0] + self.window
        if count:
            hits.append(now)
        return None

    def forget_idle(self, now: float) -> None:
        """Drop users with nothing in the window, so memory stays bounded by the recently active users."""
        for user_id in [u for u, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]:
            del self._hits[user_id]

    def __len__(self) -> int:
        return len(self._hits)


class Limits:
    def __init__(self, limits: LimitSettings, permissions: PermissionSettings) -> None:
        self.settings = limits
        self.permissions = permissions
        self.rate = RateLimiter(limits.commands_per_minute)

    def bypasses(self, actor: Actor) -> bool:
        return not actor.role_ids.isdisjoint(self.permissions.bypass_roles)

    def check_place(self, actor: Actor, job: Job | None = None) -> None:
        """The channel and role allow-lists (empty lists allow everyone everywhere); with ``job``, also the job's
        own place: its guild, or for a job made in a direct message, that DM."""
        channels = self.permissions.allowed_channels
        if channels and actor.channel_id not in channels:
            raise PermissionDeniedError(
                f"I don't take requests in this channel. Try {_listed((f'<#{c}>' for c in channels), 'or')}."
            )
        roles = self.permissions.allowed_roles
        if roles and actor.role_ids.isdisjoint(roles) and not self.bypasses(actor):
            raise PermissionDeniedError(
                f"You need the {_listed((f'<@&{r}>' for r in roles), 'or')} role to use me here."
            )
        if job is not None:
            check_job_place(actor, job)

    def admit(self, actor: Actor, now: float, *, job: Job | None = None, count: bool = True) -> None:
        """A command or a button press: allowed here (``check_place``, with the ``job`` it acts on), and not too
        often. Raises the refusal to show.

        ``count=False`` only looks (a button that opens a form: the form's submit is what counts), so one
        action never costs two presses and nobody fills in a form only to be refused."""
        self.check_place(actor, job)
        if self.bypasses(actor):
            return
        retry_at = self.rate.hit(actor.user_id, now, count=count)
        if retry_at is not None:
            n = self.settings.commands_per_minute
            what = "command or button" if n == 1 else "commands or buttons"
            raise RateLimitedError(
                f"You're going a bit fast: {n} {what} a minute at most. Try again {discord_time(retry_at)}.",
                retry_at,
            )

    def admit_job(self, actor: Actor, counts: ActiveCounts, now: float, *, free_at: float | None = None) -> None:
        """A new job fits under the per-user and global caps. ``free_at`` is when a slot may free up, if known.

        ``retry_at`` on the refusal is ``free_at``, or ``now`` when unknown (meaning "when a job ends").
        """
        if self.bypasses(actor):
            return
        when = f" (about {discord_time(free_at)})" if free_at is not None else ""
        mine, cap = counts.of(actor.user_id), self.settings.max_jobs_per_user
        if mine >= cap:
            raise RateLimitedError(
                f"You already have {_jobs(mine)} waiting or running, the most one person can have. "
                f"Try again when one of them finishes{when}; `/jobs` shows them.",
                free_at if free_at is not None else now,
            )
        if counts.total >= self.settings.max_jobs_total:
            raise RateLimitedError(
                f"The studio is full right now ({_jobs(counts.total)} waiting or running). "
                f"Please try again in a few minutes{when}.",
                free_at if free_at is not None else now,
            )

    def check_owner_or_moderator(self, actor: Actor, owner_id: int, doing: str = "cancel this job") -> None:
        """Cancel and Delete: only the job's owner, or someone with Manage Messages in the channel."""
        if actor.user_id != owner_id and not actor.can_manage_messages:
            raise PermissionDeniedError(
                f"Only the person who started this job, or someone who can manage messages here, can {doing}."
            )


def job_place_refusal(actor: Actor, job: Job) -> str | None:
    """Why ``job`` may not be acted on where ``actor`` is, or None: a job is acted on only where it was made, in
    its guild, or for a job made in a direct message, in that same DM."""
    if job.guild_id is None:
        if actor.guild_id is not None or actor.channel_id != job.channel_id:
            return "That job was made in a direct message; its buttons work only there."
        return None
    if actor.guild_id is None:
        return "That job belongs to a server; its buttons work only in that server, not in direct messages."
    if actor.guild_id != job.guild_id:
        return "That job belongs to another server; its buttons work only there."
    return None


def check_job_place(actor: Actor, job: Job) -> None:
    refusal = job_place_refusal(actor, job)
    if refusal is not None:
        raise PermissionDeniedError(refusal)


def check_origin(job: Job, message_id: int | None, carries_button: bool) -> None:
    """A press acts only from the job's own message: the one its row names, or a message of ours carrying that
    very button (``carries_button``: a ``/show`` copy, the ``/jobs`` list). Never from someone else's message
    under a custom_id that names the job."""
    if message_id is None or (message_id != job.message_id and not carries_button):
        raise PermissionDeniedError("That button doesn't belong to this message; use the one on the job's message.")


def _jobs(n: int) -> str:
    return f"{n} job" if n == 1 else f"{n} jobs"


def _listed(items: Iterable[str], word: str) -> str:
    names = list(items)
    shown = names[:_MAX_LISTED]
    if len(names) > _MAX_LISTED:
        return ", ".join(shown) + f" {word} another allowed one"
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + f" {word} {shown[-1]}"
