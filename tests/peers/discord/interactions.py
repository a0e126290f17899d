"""Interactions: what the emulator sends (INTERACTION_CREATE payloads) and what it remembers of each.

The builders here turn a test's intent ("alice runs /generate prompt:cat in #general") into the exact payload
Discord sends: options typed from the registered command's schema, ``resolved`` users/members/roles/channels/
attachments, the member with its permissions, ``app_permissions``, locales and ``attachment_size_limit``. They
refuse (``ValueError``) what Discord's own client would never send: unknown or missing required options, values
outside ``choices`` or bounds, clicks on components that are not on the message or are disabled.

For hostile clients (the last section): ``forge_press`` / ``forge_modal`` / ``forge_command`` send any custom_id,
form values or command from any ``Place`` — a channel of the default guild, ``other_guild(emu)`` or
``dm_place(emu, user)`` — exactly as Discord would deliver them; ``post_as`` makes a member's own message.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from .messages import StoredAttachment, StoredMessage
from .models import EVERYONE_PERMISSIONS, Channel, Guild, Member, Permission, Role, User
from .records import FileRecord

if TYPE_CHECKING:
    from .server import DiscordEmulator


class InteractionType(IntEnum):
    PING = 1
    APPLICATION_COMMAND = 2
    MESSAGE_COMPONENT = 3
    APPLICATION_COMMAND_AUTOCOMPLETE = 4
    MODAL_SUBMIT = 5


class ResponseType(IntEnum):
    PONG = 1
    CHANNEL_MESSAGE_WITH_SOURCE = 4
    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
    DEFERRED_UPDATE_MESSAGE = 6
    UPDATE_MESSAGE = 7
    APPLICATION_COMMAND_AUTOCOMPLETE_RESULT = 8
    MODAL = 9


class OptionType(IntEnum):
    SUB_COMMAND = 1
    SUB_COMMAND_GROUP = 2
    STRING = 3
    INTEGER = 4
    BOOLEAN = 5
    USER = 6
    CHANNEL = 7
    ROLE = 8
    MENTIONABLE = 9
    NUMBER = 10
    ATTACHMENT = 11


#: The callback types Discord accepts as the first response to each kind of interaction.
ALLOWED_RESPONSES: dict[InteractionType, frozenset[int]] = {
    InteractionType.APPLICATION_COMMAND: frozenset({4, 5, 9}),
    InteractionType.MESSAGE_COMPONENT: frozenset({4, 5, 6, 7, 9}),
    InteractionType.APPLICATION_COMMAND_AUTOCOMPLETE: frozenset({8}),
    InteractionType.MODAL_SUBMIT: frozenset({4, 5, 6, 7}),
}


@dataclass(frozen=True)
class InteractionResponse:
    """One accepted callback; ``time`` is monotonic."""

    type: ResponseType
    data: dict[str, Any]
    time: float
    files: tuple[FileRecord, ...] = ()


@dataclass
class InteractionRecord:
    """One interaction the emulator delivered, and everything the bot did with it.

    ``created`` is the monotonic time of delivery (the 3 s and token deadlines count from it); ``message_id``
    is the message a component or modal was on; ``original_message_id`` the message ``@original`` refers to.
    ``refusals`` lists the Discord error codes of callbacks the emulator refused (late, twice, ...).
    """

    id: int
    token: str
    type: InteractionType
    data: dict[str, Any]
    user: User
    channel: Channel
    created: float
    payload: dict[str, Any]
    message_id: int | None = None
    responses: list[InteractionResponse] = field(default_factory=list)
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    token_revoked: bool = False
    refusals: list[int] = field(default_factory=list)

    @property
    def response(self) -> InteractionResponse | None:
        return self.responses[0] if self.responses else None

    @property
    def responded(self) -> bool:
        return bool(self.responses)

    @property
    def response_type(self) -> ResponseType | None:
        return self.responses[0].type if self.responses else None

    @property
    def modal(self) -> dict[str, Any] | None:
        """The modal the bot opened in response (type 9 callback data), if any."""
        response = self.response
        return response.data if response and response.type == ResponseType.MODAL else None

    @property
    def autocomplete_choices(self) -> list[dict[str, Any]] | None:
        response = self.response
        if response and response.type == ResponseType.APPLICATION_COMMAND_AUTOCOMPLETE_RESULT:
            return list(response.data.get("choices") or [])
        return None

    @property
    def custom_id(self) -> str | None:
        return self.data.get("custom_id")


class ResolvedBuilder:
    """Collects the ``resolved`` map of an interaction's data."""

    def __init__(self, guild: Guild) -> None:
        self._guild = guild
        self.data: dict[str, dict[str, Any]] = {}

    def _put(self, kind: str, key: int, value: dict[str, Any]) -> str:
        self.data.setdefault(kind, {})[str(key)] = value
        return str(key)

    def user(self, user: User) -> str:
        member = self._guild.member(user.id)
        if member is not None:
            member_payload = member.payload()
            del member_payload["user"]
            member_payload["permissions"] = str(self._guild.permissions_for(user.id))
            self._put("members", user.id, member_payload)
        return self._put("users", user.id, user.payload())

    def role(self, role: Role) -> str:
        return self._put("roles", role.id, role.payload())

    def channel(self, channel: Channel, viewer: User) -> str:
        partial = {k: v for k, v in channel.payload().items() if k in ("id", "type", "name", "parent_id", "flags")}
        partial["permissions"] = str(self._guild.permissions_for(viewer.id))
        return self._put("channels", channel.id, partial)

    def attachment(self, attachment: StoredAttachment) -> str:
        return self._put("attachments", attachment.id, attachment.payload())


def _bounded(option: Mapping[str, Any], value: float | int) -> None:
    low, high = option.get("min_value"), option.get("max_value")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"option {option['name']!r}: {value} is outside [{low}, {high}]")


def _convert(option: Mapping[str, Any], value: Any, resolved: ResolvedBuilder, guild: Guild, user: User) -> Any:
    """The wire value of one option, checked as Discord's client would."""
    kind, name = int(option["type"]), option["name"]
    match kind:
        case OptionType.STRING:
            if not isinstance(value, str):
                raise ValueError(f"option {name!r} takes a string, not {value!r}")
            low, high = option.get("min_length", 0), option.get("max_length", 6000)
            if not low <= len(value) <= high:
                raise ValueError(f"option {name!r}: length {len(value)} is outside [{low}, {high}]")
        case OptionType.INTEGER | OptionType.NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"option {name!r} takes a number, not {value!r}")
            if kind == OptionType.INTEGER and not float(value).is_integer():
                raise ValueError(f"option {name!r} takes an integer, not {value!r}")
            _bounded(option, value)
            value = int(value) if kind == OptionType.INTEGER else value
        case OptionType.BOOLEAN:
            if not isinstance(value, bool):
                raise ValueError(f"option {name!r} takes a boolean, not {value!r}")
        case OptionType.USER | OptionType.MENTIONABLE if isinstance(value, User):
            return resolved.user(value)
        case OptionType.ROLE | OptionType.MENTIONABLE if isinstance(value, Role):
            return resolved.role(value)
        case OptionType.CHANNEL if isinstance(value, Channel):
            types = option.get("channel_types")
            if types and value.type not in types:
                raise ValueError(f"option {name!r} does not accept channel type {value.type}")
            return resolved.channel(value, user)
        case OptionType.ATTACHMENT if isinstance(value, StoredAttachment):
            return resolved.attachment(value)
        case _:
            raise ValueError(f"option {name!r} (type {kind}) cannot take {value!r}")
    choices = option.get("choices")
    if choices and value not in [choice["value"] for choice in choices]:
        raise ValueError(f"option {name!r}: {value!r} is not one of its choices")
    return value


def command_data(
    command: Mapping[str, Any],
    path: Sequence[str],
    options: Mapping[str, Any],
    *,
    guild: Guild,
    user: User,
    focused: str | None = None,
) -> dict[str, Any]:
    """``data`` of an APPLICATION_COMMAND (or, with ``focused``, an AUTOCOMPLETE) interaction."""
    groups = _walk_schema(command, path)
    schema = list((groups[-1] if groups else command).get("options") or [])
    known = {o["name"]: o for o in schema}
    unknown = set(options) - set(known)
    if unknown:
        raise ValueError(f"/{command['name']} has no option(s) {sorted(unknown)}")
    resolved = ResolvedBuilder(guild)
    built: list[dict[str, Any]] = []
    for option in schema:
        name = option["name"]
        if name not in options:
            if option.get("required") and focused is None:
                raise ValueError(f"/{command['name']}: required option {name!r} is missing")
            continue
        entry: dict[str, Any] = {"name": name, "type": option["type"]}
        if focused is None:
            entry["value"] = _convert(option, options[name], resolved, guild, user)
        else:
            entry["value"] = options[name]
            if name == focused:
                if not option.get("autocomplete"):
                    raise ValueError(f"option {name!r} has no autocomplete")
                entry["focused"] = True
        built.append(entry)
    if focused is not None and focused not in options:
        raise ValueError(f"the focused option {focused!r} needs a (partial) value")
    for group in reversed(groups):
        built = [{"name": group["name"], "type": group["type"], "options": built}]
    data: dict[str, Any] = {"id": command["id"], "name": command["name"], "type": command.get("type", 1)}
    if built:
        data["options"] = built
    if resolved.data:
        data["resolved"] = resolved.data
    if command.get("guild_id"):
        data["guild_id"] = command["guild_id"]
    return data


def _walk_schema(command: Mapping[str, Any], path: Sequence[str]) -> list[Mapping[str, Any]]:
    """The subcommand group / subcommand options named by ``path``."""
    found: list[Mapping[str, Any]] = []
    schema = list(command.get("options") or [])
    for name in path:
        option = next((o for o in schema if o["name"] == name and o["type"] in (1, 2)), None)
        if option is None:
            raise ValueError(f"/{command['name']} has no subcommand {' '.join(path)!r}")
        found.append(option)
        schema = list(option.get("options") or [])
    return found


def component_data(component: Mapping[str, Any], values: Sequence[str] | None) -> dict[str, Any]:
    """``data`` of a MESSAGE_COMPONENT interaction on ``component`` (a button, or a select with ``values``)."""
    custom_id, kind = component.get("custom_id"), int(component.get("type", 0))
    if component.get("disabled"):
        raise ValueError(f"component {custom_id!r} is disabled")
    data: dict[str, Any] = {"custom_id": custom_id, "component_type": kind}
    if kind == 2:
        if values is not None:
            raise ValueError(f"{custom_id!r} is a button: it takes no values")
        return data
    if values is None:
        raise ValueError(f"{custom_id!r} is a select menu: it needs values")
    low, high = component.get("min_values", 1), component.get("max_values", 1)
    if not low <= len(values) <= high:
        raise ValueError(f"select {custom_id!r} takes {low} to {high} values, not {len(values)}")
    if kind == 3:
        offered = [option.get("value") for option in component.get("options") or []]
        missing = [value for value in values if value not in offered]
        if missing:
            raise ValueError(f"select {custom_id!r} offers no {missing}")
    data["values"] = list(values)
    return data


def modal_submit_data(modal: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """``data`` of a MODAL_SUBMIT for ``modal`` (the type 9 callback data) filled with ``values``."""
    rows = []
    inputs: set[str] = set()
    for row in modal.get("components") or []:
        inner = row["components"][0] if row.get("type") == 1 else row["component"]
        custom_id = inner["custom_id"]
        inputs.add(custom_id)
        value = values.get(custom_id, inner.get("value") or "")
        low, high = inner.get("min_length", 0), inner.get("max_length", 4000)
        if inner.get("required", True) and not value:
            raise ValueError(f"text input {custom_id!r} is required")
        if value and not low <= len(value) <= high:
            raise ValueError(f"text input {custom_id!r}: length {len(value)} is outside [{low}, {high}]")
        submitted = {"type": inner.get("type", 4), "custom_id": custom_id, "value": value}
        if row.get("type") == 1:
            rows.append({"type": 1, "components": [submitted]})
        else:
            rows.append({"type": row["type"], "component": submitted})
    unknown = set(values) - inputs
    if unknown:
        raise ValueError(f"modal {modal.get('custom_id')!r} has no input(s) {sorted(unknown)}")
    return {"custom_id": modal.get("custom_id"), "components": rows}


def interaction_payload(
    *,
    interaction_id: int,
    token: str,
    kind: InteractionType,
    data: dict[str, Any],
    application_id: int,
    guild: Guild,
    channel: Channel,
    user: User,
    locale: str,
    attachment_size_limit: int,
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The INTERACTION_CREATE payload, as Discord sends it for a guild text channel."""
    member = guild.member(user.id)
    if member is None:
        raise ValueError(f"{user.username} is not a member of the guild")
    member_payload = member.payload()
    member_payload["permissions"] = str(guild.permissions_for(user.id))
    channel_payload = channel.payload()
    channel_payload["permissions"] = member_payload["permissions"]
    payload: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(application_id),
        "type": int(kind),
        "data": data,
        "guild_id": str(guild.id),
        "guild": {"id": str(guild.id), "locale": guild.preferred_locale, "features": []},
        "channel_id": str(channel.id),
        "channel": channel_payload,
        "member": member_payload,
        "token": token,
        "version": 1,
        "app_permissions": str(guild.permissions_for(application_id)),
        "locale": locale,
        "guild_locale": guild.preferred_locale,
        "entitlements": [],
        "entitlement_sku_ids": [],
        "authorizing_integration_owners": {"0": str(guild.id)},
        "context": 0,
        "attachment_size_limit": attachment_size_limit,
    }
    if message is not None:
        payload["message"] = message
    return payload


# --- Hostile clients: presses, forms and commands Discord's own client would not send ---------------------------
#
# A modified client can send any ``custom_id`` on any message it can see, from any guild the bot shares or from
# a direct message with the bot. These builders send exactly what Discord then delivers: the message the
# interaction names is filled in from Discord's own copy (its real author and components), whatever custom_id the
# press claims. A DM interaction has ``user`` instead of ``member``, no ``guild_id`` / ``guild`` /
# ``guild_locale``, a DM channel (type 1) with its recipient, ``context`` 1 (BOT_DM) and, for a guild-installed
# app, ``authorizing_integration_owners`` ``{"0": "0"}``.

DM_CHANNEL = 1


@dataclass(frozen=True)
class Place:
    """Where an interaction comes from: a channel of a guild, or (``guild`` None) a DM channel with the bot."""

    channel: Channel
    guild: Guild | None


def dm_payload(
    *,
    interaction_id: int,
    token: str,
    kind: InteractionType,
    data: dict[str, Any],
    application_id: int,
    channel: Channel,
    user: User,
    locale: str,
    attachment_size_limit: int,
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The INTERACTION_CREATE payload, as Discord sends it in a DM with the bot."""
    payload: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(application_id),
        "type": int(kind),
        "data": data,
        "channel_id": str(channel.id),
        "channel": {
            "id": str(channel.id),
            "type": DM_CHANNEL,
            "last_message_id": None,
            "flags": 0,
            "recipients": [user.payload()],
        },
        "user": user.payload(),
        "token": token,
        "version": 1,
        "app_permissions": str(_DM_APP_PERMISSIONS),
        "locale": locale,
        "entitlements": [],
        "entitlement_sku_ids": [],
        "authorizing_integration_owners": {"0": "0"},
        "context": 1,
        "attachment_size_limit": attachment_size_limit,
    }
    if message is not None:
        payload["message"] = message
    return payload


#: What a bot may do in a DM (Discord computes it from the DM's implicit permissions).
_DM_APP_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16)


def _extras(emu: DiscordEmulator) -> dict[str, Any]:
    return emu.state.__dict__.setdefault("hostile_places", {})


def dm_place(emu: DiscordEmulator, user: User | str) -> Place:
    """The DM channel between ``user`` and the bot (the same one every time, as on Discord)."""
    user_ = emu.users[user] if isinstance(user, str) else user
    places = _extras(emu)
    key = ("dm", user_.id)
    if key not in places:
        places[key] = Place(Channel(emu.state.ids.next(), 0, "", 0, type=DM_CHANNEL), None)
    place: Place = places[key]
    return place


def other_guild(emu: DiscordEmulator) -> Place:
    """A second guild (one text channel, ``lobby``) where every human of the default world is a member too and
    ``alice`` is a Moderator (Manage Messages) as well. The bot got no GUILD_CREATE for it: a hostile client
    naming a job of the first guild is all that arrives from there."""
    places = _extras(emu)
    if "guild" not in places:
        ids, world = emu.state.ids, emu.state.world
        guild_id = ids.next()
        moderator = Role(ids.next(), "Moderator", int(EVERYONE_PERMISSIONS | Permission.MANAGE_MESSAGES), 1)
        lobby = Channel(ids.next(), guild_id, "lobby", 0)
        joined = world.guild.members[0].joined_at
        members = [
            Member(user, (moderator.id,) if name == "alice" else (), joined) for name, user in world.users.items()
        ]
        guild = Guild(
            guild_id,
            "another guild",
            ids.next(),
            roles=[Role(guild_id, "@everyone", int(EVERYONE_PERMISSIONS), 0), moderator],
            channels=[lobby],
            members=members,
        )
        places["guild"] = Place(lobby, guild)
    place: Place = places["guild"]
    return place


def post_as(emu: DiscordEmulator, user: User | str, channel: Channel | str, content: str) -> StoredMessage:
    """A plain message by a member (not the bot) in a channel of the default guild: someone else's message."""
    channel_ = emu.channels[channel] if isinstance(channel, str) else channel
    user_ = emu.users[user] if isinstance(user, str) else user
    return emu.state.messages.create(
        channel_id=channel_.id, guild_id=channel_.guild_id, author=user_, payload={"content": content}
    )


async def deliver(
    emu: DiscordEmulator,
    kind: InteractionType,
    data: dict[str, Any],
    user: User | str,
    place: Place | None = None,
    *,
    message: StoredMessage | None = None,
) -> InteractionRecord:
    """Sends an interaction as Discord would deliver it from ``place`` (default: the message's channel, or
    ``#general``), without any check of what the data claims."""
    user_ = emu.users[user] if isinstance(user, str) else user
    if place is None:
        channel = emu.guild.channel(message.channel_id) if message is not None else None
        place = Place(channel or emu.channels["general"], emu.guild)
    if emu.gateway.current is None:
        await emu.wait_for(lambda: emu.gateway.current is not None, 5.0, "a gateway session")
    state = emu.state
    interaction_id = state.ids.next()
    token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(64)
    shown = state.message_payload(message) if message is not None else None
    common: dict[str, Any] = {
        "interaction_id": interaction_id,
        "token": token,
        "kind": kind,
        "data": data,
        "application_id": state.world.application_id,
        "channel": place.channel,
        "user": user_,
        "locale": emu.config.locale,
        "attachment_size_limit": emu.config.interaction_attachment_size_limit,
        "message": shown,
    }
    if place.guild is None:
        payload = dm_payload(**common)
    else:
        payload = interaction_payload(guild=place.guild, **common)
        if place.guild is not state.world.guild:
            payload["authorizing_integration_owners"] = {"0": str(place.guild.id)}
    record = InteractionRecord(
        interaction_id,
        token,
        kind,
        data,
        user_,
        place.channel,
        time.monotonic(),
        payload,
        message_id=message.id if message is not None else None,
    )
    state.add_interaction(record)
    await emu.gateway.dispatch("INTERACTION_CREATE", payload)
    return record


async def forge_press(
    emu: DiscordEmulator, user: User | str, message: StoredMessage, custom_id: str, place: Place | None = None
) -> InteractionRecord:
    """A button press naming ``custom_id`` on ``message``, whether or not the message has that button."""
    data = {"custom_id": custom_id, "component_type": 2}
    return await deliver(emu, InteractionType.MESSAGE_COMPONENT, data, user, place, message=message)


async def forge_modal(
    emu: DiscordEmulator,
    user: User | str,
    message: StoredMessage | None,
    custom_id: str,
    values: Mapping[str, str],
    place: Place | None = None,
) -> InteractionRecord:
    """A form submit with ``custom_id`` and any ``values`` (no form need have been opened, no length checked)."""
    rows = [
        {"type": 1, "components": [{"type": 4, "custom_id": name, "value": value}]} for name, value in values.items()
    ]
    data = {"custom_id": custom_id, "components": rows}
    return await deliver(emu, InteractionType.MODAL_SUBMIT, data, user, place, message=message)


async def forge_command(
    emu: DiscordEmulator,
    user: User | str,
    name: str,
    options: Mapping[str, Any] | None = None,
    place: Place | None = None,
    focused: str | None = None,
) -> InteractionRecord:
    """``/name`` (``"preset use"`` for a subcommand) from ``place`` (a DM, another guild), typed and checked as
    Discord's client would (a guild command arriving from elsewhere is the hostile part); with ``focused``, the
    autocomplete request for that option instead."""
    user_ = emu.users[user] if isinstance(user, str) else user
    top, *path = name.split()
    data = command_data(emu._command(top), path, dict(options or {}), guild=emu.guild, user=user_, focused=focused)
    kind = InteractionType.APPLICATION_COMMAND_AUTOCOMPLETE if focused else InteractionType.APPLICATION_COMMAND
    return await deliver(emu, kind, data, user_, place)
