"""The emulated world: one guild with its roles, text channels and members, and the bot.

Each object renders the payload Discord sends for it (``payload()``), with every field nextcord reads. The
default world (:func:`build_world`) has three human members — ``alice`` holds the ``Moderator`` role (Manage
Messages), ``bob`` and ``carol`` only ``@everyone`` — two text channels, ``general`` and ``renders``, and the
bot with its managed role.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any

from .snowflake import SnowflakeGenerator, iso_timestamp


class Permission(IntFlag):
    CREATE_INSTANT_INVITE = 1 << 0
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    USE_EXTERNAL_EMOJIS = 1 << 18
    CHANGE_NICKNAME = 1 << 26
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38


ALL_PERMISSIONS = (1 << 51) - 1

EVERYONE_PERMISSIONS = (
    Permission.CREATE_INSTANT_INVITE
    | Permission.ADD_REACTIONS
    | Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.USE_EXTERNAL_EMOJIS
    | Permission.CHANGE_NICKNAME
    | Permission.USE_APPLICATION_COMMANDS
    | Permission.SEND_MESSAGES_IN_THREADS
)
BOT_PERMISSIONS = (
    Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.ADD_REACTIONS
)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass(frozen=True)
class Role:
    id: int
    name: str
    permissions: int
    position: int
    managed: bool = False
    bot_id: int | None = None
    color: int = 0

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(int(self.permissions)),
            "position": self.position,
            "color": self.color,
            "hoist": False,
            "managed": self.managed,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass(frozen=True)
class Overwrite:
    """A channel permission overwrite, as Discord's docs (Resources → Channel → Overwrite Object) describe it:
    ``id`` a role (``type`` 0; the guild id is ``@everyone``) or a member (``type`` 1), ``allow`` / ``deny`` bit sets
    sent as strings."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0

    ROLE = 0
    MEMBER = 1

    @classmethod
    def role(cls, role: Role | int, *, allow: int = 0, deny: int = 0) -> Overwrite:
        return cls(role if isinstance(role, int) else role.id, cls.ROLE, int(allow), int(deny))

    @classmethod
    def member(cls, user: User | int, *, allow: int = 0, deny: int = 0) -> Overwrite:
        return cls(user if isinstance(user, int) else user.id, cls.MEMBER, int(allow), int(deny))

    def payload(self) -> dict[str, Any]:
        return {"id": str(self.id), "type": self.type, "allow": str(self.allow), "deny": str(self.deny)}


@dataclass(frozen=True)
class Channel:
    id: int
    guild_id: int
    name: str
    position: int
    type: int = 0  # GUILD_TEXT
    topic: str | None = None
    #: Set with ``DiscordEmulator.set_overwrites``; served in ``permission_overwrites``.
    overwrites: tuple[Overwrite, ...] = ()

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [overwrite.payload() for overwrite in self.overwrites],
            "nsfw": False,
            "topic": self.topic,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }


@dataclass(frozen=True)
class Member:
    user: User
    role_ids: tuple[int, ...]
    joined_at: str

    def payload(self) -> dict[str, Any]:
        return {
            "user": self.user.payload(),
            "roles": [str(role_id) for role_id in self.role_ids],
            "joined_at": self.joined_at,
            "nick": None,
            "avatar": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "premium_since": None,
            "communication_disabled_until": None,
        }


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    roles: list[Role] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)
    preferred_locale: str = "en-US"
    joined_at: str = ""

    def member(self, user_id: int) -> Member | None:
        return next((member for member in self.members if member.user.id == user_id), None)

    def role(self, role_id: int) -> Role | None:
        return next((role for role in self.roles if role.id == role_id), None)

    def channel(self, channel_id: int) -> Channel | None:
        return next((channel for channel in self.channels if channel.id == channel_id), None)

    def permissions_for(self, user_id: int) -> int:
        """Guild-level (base) permissions: ``compute_base_permissions`` of Discord's docs (Topics → Permissions →
        Permission Overwrites), before any channel overwrite."""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        member = self.member(user_id)
        value = 0
        for role in self.roles:
            if role.id == self.id or (member is not None and role.id in member.role_ids):
                value |= int(role.permissions)
        return ALL_PERMISSIONS if value & Permission.ADMINISTRATOR else value

    def channel_permissions_for(self, user_id: int, channel: Channel) -> int:
        """Permissions in a channel: ``compute_overwrites`` of Discord's docs (Topics → Permissions → Permission
        Overwrites): base, then the ``@everyone`` overwrite, then the member's roles' overwrites together (deny,
        then allow), then the member's own."""
        base = self.permissions_for(user_id)
        if base & Permission.ADMINISTRATOR:
            return ALL_PERMISSIONS
        overwrites = {(o.type, o.id): o for o in channel.overwrites}
        value = base
        everyone = overwrites.get((Overwrite.ROLE, self.id))
        if everyone is not None:
            value = (value & ~everyone.deny) | everyone.allow
        member = self.member(user_id)
        role_ids = member.role_ids if member is not None else ()
        allow = deny = 0
        for role_id in role_ids:
            role_overwrite = overwrites.get((Overwrite.ROLE, role_id))
            if role_overwrite is not None:
                allow |= role_overwrite.allow
                deny |= role_overwrite.deny
        value = (value & ~deny) | allow
        own = overwrites.get((Overwrite.MEMBER, user_id))
        if own is not None:
            value = (value & ~own.deny) | own.allow
        return value

    def partial_payload(self, user_id: int) -> dict[str, Any]:
        """The partial guild of ``GET /users/@me/guilds`` (Discord's docs, Resources → User → Get Current User
        Guilds): ``owner`` and ``permissions`` are the current user's, base permissions without overwrites."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "banner": None,
            "owner": user_id == self.owner_id,
            "permissions": str(self.permissions_for(user_id)),
            "features": [],
        }

    def payload(self) -> dict[str, Any]:
        """The GUILD_CREATE payload: the guild, all its channels, roles and members."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "region": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "preferred_locale": self.preferred_locale,
            "features": [],
            "application_id": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "unavailable": False,
            "large": False,
            "lazy": True,
            "member_count": len(self.members),
            "joined_at": self.joined_at,
            "roles": [role.payload() for role in self.roles],
            "channels": [channel.payload() for channel in self.channels],
            "members": [member.payload() for member in self.members],
            "threads": [],
            "presences": [],
            "voice_states": [],
            "emojis": [],
            "stickers": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
        }


@dataclass
class World:
    guild: Guild
    bot_user: User
    application_id: int
    users: dict[str, User]
    channels: dict[str, Channel]
    roles: dict[str, Role]


def build_world(ids: SnowflakeGenerator, *, locale: str = "en-US") -> World:
    """The default guild: see the module docstring."""
    joined_at = iso_timestamp(time.time() - 86400)
    guild_id = ids.next()
    bot = User(ids.next(), "discomfy", "discomfy", bot=True)
    users = {name: User(ids.next(), name, name.capitalize()) for name in ("alice", "bob", "carol")}
    everyone = Role(guild_id, "@everyone", int(EVERYONE_PERMISSIONS), 0)
    moderator = Role(ids.next(), "Moderator", int(EVERYONE_PERMISSIONS | Permission.MANAGE_MESSAGES), 1)
    bot_role = Role(ids.next(), "discomfy", int(BOT_PERMISSIONS), 2, managed=True, bot_id=bot.id)
    channels = {
        name: Channel(ids.next(), guild_id, name, position, topic=f"#{name}")
        for position, name in enumerate(("general", "renders"))
    }
    members = [
        Member(users["alice"], (moderator.id,), joined_at),
        Member(users["bob"], (), joined_at),
        Member(users["carol"], (), joined_at),
        Member(bot, (bot_role.id,), joined_at),
    ]
    guild = Guild(
        id=guild_id,
        name="discomfy test guild",
        # The owner is a separate account so that alice's powers come from her role, not from ownership.
        owner_id=ids.next(),
        roles=[everyone, moderator, bot_role],
        channels=list(channels.values()),
        members=members,
        preferred_locale=locale,
        joined_at=joined_at,
    )
    roles = {role.name: role for role in guild.roles}
    return World(guild, bot, bot.id, users, channels, roles)
