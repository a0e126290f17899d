"""Reading Discord interactions: who is asking and where, a modal's values, the guild's upload limit.

Small adapters every feature uses: ``actor_of`` turns an interaction into the ``Actor`` the admission rules check
(``jobs/admission.py``; ``guild_id`` is None in a DM, where the user has no roles or permissions), ``origin_of``
says which message a press came from and whether that message is ours and carries the button, ``interaction_ref``
keeps what a job needs to edit its message through the interaction's webhook, ``modal_values`` reads a submitted
form, and ``UploadLimits`` remembers each guild's ``attachment_size_limit`` (larger in boosted servers) from the
interactions Discord sends.

Never: trust what an interaction says without bounds (a missing user, a malformed form read as empty).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import nextcord

from discomfy.jobs.admission import Actor, Limits
from discomfy.jobs.state import ApplicationId, ChannelId, GuildId, InteractionRef, UserId


def actor_of(interaction: nextcord.Interaction[Any]) -> Actor:
    user = interaction.user
    roles = frozenset(role.id for role in getattr(user, "roles", ()) if role is not None)
    permissions = interaction.permissions
    return Actor(
        user_id=UserId(user.id if user else 0),
        channel_id=ChannelId(interaction.channel_id or 0),
        role_ids=roles,
        can_manage_messages=bool(interaction.guild_id and permissions and permissions.manage_messages),
        guild_id=GuildId(interaction.guild_id) if interaction.guild_id else None,
    )


def origin_of(interaction: nextcord.Interaction[Any], custom_id: str) -> tuple[int | None, bool]:
    """The id of the message a press (or a form opened from it) came from, and whether that message is one of
    ours carrying a component with ``custom_id``. Discord fills in the message from its own copy, so this says
    what is really on it, whatever custom_id the press names."""
    message = interaction.message
    if message is None:
        return None, False
    ours = {interaction.application_id}
    client_user = getattr(interaction.client, "user", None)
    if client_user is not None:
        ours.add(client_user.id)
    author = getattr(message, "author", None)
    by_us = (author is not None and author.id in ours) or message.webhook_id in ours
    carried = any(
        getattr(child, "custom_id", None) == custom_id
        for row in message.components
        for child in getattr(row, "children", (row,))
    )
    return message.id, bool(by_us and carried)


def interaction_ref(interaction: nextcord.Interaction[Any]) -> InteractionRef:
    return InteractionRef(
        application_id=ApplicationId(interaction.application_id),
        token=interaction.token,
        created_at=interaction.created_at.timestamp(),
    )


def modal_values(data: Any) -> dict[str, str]:
    """A modal submit's text inputs, by custom_id (rows of components, each with ``custom_id`` and ``value``)."""
    values: dict[str, str] = {}
    rows = data.get("components") if isinstance(data, Mapping) else None
    for row in rows or []:
        for item in row.get("components", []) if isinstance(row, Mapping) else []:
            if isinstance(item, Mapping) and isinstance(item.get("custom_id"), str):
                values[item["custom_id"]] = str(item.get("value") or "")
    return values


class UploadLimits:
    """Bytes a message may upload per guild: what Discord last said, else the configured default."""

    def __init__(self, default: int) -> None:
        self.default = default
        self._learned: dict[int, int] = {}

    def note(self, data: Any) -> None:
        """From an interaction payload: its ``attachment_size_limit`` for its guild."""
        if not isinstance(data, Mapping):
            return
        limit, guild_id = data.get("attachment_size_limit"), data.get("guild_id")
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 and guild_id is not None:
            self._learned[int(guild_id)] = limit

    def of(self, guild_id: int | None) -> int:
        learned = self._learned.get(guild_id) if guild_id is not None else None
        return learned or self.default


class GatedCog(nextcord.ClientCog):
    """A cog whose every command first passes the allow-lists and the rate limit (``Limits.admit``). A refusal
    is raised here and reported by the client's one error handler as an ephemeral first response."""

    limits: Limits

    def cog_application_command_check(self, interaction: nextcord.Interaction[Any]) -> bool:
        self.limits.admit(actor_of(interaction), time.time())
        return True
