"""The bot's permissions in a channel, computed the way Discord does, and the ones it needs.

How it works: ``base_permissions`` and ``channel_permissions`` follow the algorithm in Discord's docs,
https://discord.com/developers/docs/topics/permissions#permission-overwrites — the guild owner has everything;
otherwise ``@everyone``'s permissions (the role whose id is the guild's) OR the member's roles'; ADMINISTRATOR
means everything, overwrites included; then in a channel: the ``@everyone`` overwrite (deny, then allow), the
overwrites of all the member's roles together (their denies, then their allows), then the member's own overwrite.
``missing`` names what a set lacks from ``REQUIRED`` (what the bot's messages need), counting Discord's implicit
rules: without View Channel nothing else in the channel works, without Send Messages neither do Embed Links nor
Attach Files. Raw overwrites (``permission_overwrites`` of a channel) become ``Overwrite`` once, here.

Pure: no I/O, no asyncio, aiohttp or nextcord. Never: guess a permission from a role's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntFlag
from typing import Any


class Permission(IntFlag):
    """The bits we check or mention (Discord's docs, Topics → Permissions → Bitwise Permission Flags)."""

    ADMINISTRATOR = 1 << 3
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16


#: Every permission bit Discord defines today (and room for new ones): what an owner or administrator has.
ALL_PERMISSIONS = (1 << 53) - 1

#: What the bot needs in a channel it works in, and why (the words the doctor shows).
REQUIRED: Mapping[Permission, str] = {
    Permission.VIEW_CHANNEL: "View Channel",
    Permission.SEND_MESSAGES: "Send Messages",  # a fresh message when an interaction's token has expired
    Permission.EMBED_LINKS: "Embed Links",  # progress and results are embeds
    Permission.ATTACH_FILES: "Attach Files",  # the pictures and videos
    Permission.READ_MESSAGE_HISTORY: "Read Message History",  # edits and replies to its own earlier messages
}
#: The permissions integer of the invite link (docs/deploy.md): exactly ``REQUIRED``.
REQUIRED_BITS = sum(int(p) for p in REQUIRED)

ROLE, MEMBER = 0, 1


@dataclass(frozen=True)
class Overwrite:
    """One channel overwrite: ``target`` a role id (``kind`` ROLE; the guild id is ``@everyone``) or a user id."""

    target: int
    kind: int
    allow: int
    deny: int


def parse_overwrites(raw: Any) -> tuple[Overwrite, ...]:
    """A channel's ``permission_overwrites``; malformed entries are skipped (an untrusted answer)."""
    found: list[Overwrite] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        try:
            found.append(
                Overwrite(int(item["id"]), int(item["type"]), int(item.get("allow") or 0), int(item.get("deny") or 0))
            )
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(found)


def base_permissions(
    *, guild_id: int, owner_id: int, user_id: int, role_permissions: Mapping[int, int], member_roles: Iterable[int]
) -> int:
    """``compute_base_permissions``: the guild-wide permissions of a member (``role_permissions``: role id → bits)."""
    if user_id == owner_id:
        return ALL_PERMISSIONS
    value = role_permissions.get(guild_id, 0)
    for role_id in member_roles:
        value |= role_permissions.get(role_id, 0)
    return ALL_PERMISSIONS if value & Permission.ADMINISTRATOR else value


def channel_permissions(
    base: int, overwrites: Sequence[Overwrite], *, guild_id: int, user_id: int, member_roles: Iterable[int]
) -> int:
    """``compute_overwrites``: a member's permissions in a channel, from its base permissions."""
    if base & Permission.ADMINISTRATOR:
        return ALL_PERMISSIONS
    by_target = {(o.kind, o.target): o for o in overwrites}
    value = base
    everyone = by_target.get((ROLE, guild_id))
    if everyone is not None:
        value = (value & ~everyone.deny) | everyone.allow
    allow = deny = 0
    for role_id in member_roles:
        role = by_target.get((ROLE, role_id))
        if role is not None:
            allow |= role.allow
            deny |= role.deny
    value = (value & ~deny) | allow
    own = by_target.get((MEMBER, user_id))
    if own is not None:
        value = (value & ~own.deny) | own.allow
    return value


def missing(value: int) -> list[str]:
    """The names of the ``REQUIRED`` permissions ``value`` lacks, implicit denials counted, in ``REQUIRED`` order."""
    effective = value
    if not effective & Permission.VIEW_CHANNEL:
        effective = 0
    elif not effective & Permission.SEND_MESSAGES:
        effective &= ~(Permission.EMBED_LINKS | Permission.ATTACH_FILES)
    return [name for bit, name in REQUIRED.items() if not effective & bit]


def invite_url(application_id: int) -> str:
    """The link that adds the bot to a server with the scopes and permissions it needs."""
    return (
        "https://discord.com/oauth2/authorize"
        f"?client_id={application_id}&scope=bot+applications.commands&permissions={REQUIRED_BITS}"
    )
