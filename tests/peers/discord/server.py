"""``DiscordEmulator``: the public face of the emulator (see the package docstring for how to use it)."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from . import rest
from .faults import Faults
from .gateway import GatewayServer
from .http_util import API_PREFIX, FAULTS, GATEWAY, STATE
from .interactions import (
    InteractionRecord,
    InteractionResponse,
    InteractionType,
    command_data,
    component_data,
    interaction_payload,
    modal_submit_data,
)
from .limits import SELECT_TYPES
from .messages import StoredAttachment, StoredMessage
from .models import Channel, Guild, Member, Overwrite, Role, User
from .records import GatewayRecord, RequestRecord
from .snowflake import iso_timestamp
from .state import EmulatorConfig, EmulatorState

UserLike = User | str
ChannelLike = Channel | str | int
MessageLike = StoredMessage | int


class DiscordEmulator:
    """Discord's REST API and gateway on 127.0.0.1, for a real nextcord client."""

    def __init__(
        self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", time_scale: float | None = None
    ) -> None:
        """``time_scale`` (if given) sets ``config.time_scale``: real seconds per Discord second of rate limits."""
        self.config = config or EmulatorConfig()
        if time_scale is not None:
            if time_scale <= 0:
                raise ValueError("time_scale must be positive")
            self.config.time_scale = time_scale
        self.state = EmulatorState(self.config)
        self.gateway = GatewayServer(self.state)
        self.faults = Faults(self.state, self.gateway)
        self._host = host
        self._runner: web.AppRunner | None = None

    # Lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[rest.front_middleware], client_max_size=1024**3)
        app[STATE] = self.state
        app[GATEWAY] = self.gateway
        app[FAULTS] = self.faults
        rest.add_routes(app)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/gateway-resume", self.gateway.handle)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self._host, 0))
        port = sock.getsockname()[1]
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        self.state.base_url = f"http://{self._host}:{port}"

    async def stop(self) -> None:
        if self._runner is None:
            return
        await self.gateway.close()
        await self._runner.cleanup()
        self._runner = None

    @property
    def open_connections(self) -> int:
        """HTTP and websocket connections clients hold open to the emulator now (keep-alive ones too)."""
        server = self._runner.server if self._runner is not None else None
        return len(server.connections) if server is not None else 0

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # The world ---------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.state.base_url

    @property
    def api_base(self) -> str:
        """What ``nextcord.http.Route.BASE`` must be set to."""
        return self.state.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return self.gateway.url

    @property
    def bot_token(self) -> str:
        return self.state.bot_token

    @property
    def application_id(self) -> int:
        return self.state.world.application_id

    @property
    def bot_user(self) -> User:
        return self.state.world.bot_user

    @property
    def guild(self) -> Guild:
        return self.state.world.guild

    @property
    def channels(self) -> dict[str, Channel]:
        return self.state.world.channels

    @property
    def users(self) -> dict[str, User]:
        """The human members by name: ``alice`` (Moderator: Manage Messages), ``bob``, ``carol``."""
        return self.state.world.users

    @property
    def roles(self) -> dict[str, Role]:
        return self.state.world.roles

    def add_member(self, name: str, roles: Sequence[Role] = ()) -> User:
        """A new human member of the guild (``@everyone`` plus ``roles``), usable by name like ``alice``.

        No GUILD_MEMBER_ADD is dispatched: interactions carry the member, which is all a bot without the
        privileged members intent ever sees.
        """
        if name in self.users:
            raise ValueError(f"{name} is already a member")
        user = User(self.state.ids.next(), name, name.capitalize())
        joined_at = self.guild.members[0].joined_at if self.guild.members else iso_timestamp(time.time())
        self.guild.members.append(Member(user, tuple(role.id for role in roles), joined_at))
        self.users[name] = user
        return user

    # Permissions (served by REST: ``GET /channels/{id}``'s ``permission_overwrites``, ``/guilds/{id}/roles``,
    # ``/guilds/{id}/members/{user}``, ``/users/@me/guilds``; no gateway event is sent for these changes).

    def set_overwrites(self, channel: ChannelLike, *overwrites: Overwrite) -> Channel:
        """Replace a channel's permission overwrites: ``emu.set_overwrites("renders", Overwrite.role(emu.guild.id,
        deny=Permission.ATTACH_FILES))`` (the guild id is ``@everyone``; ``Overwrite.member(emu.bot_user, ...)``)."""
        return self.state.set_overwrites(self._channel(channel), overwrites)

    def set_role_permissions(self, role: Role | str, permissions: int) -> Role:
        """A role's guild-wide permissions (``role`` by name: ``"@everyone"``, ``"Moderator"``, ``"discomfy"``)."""
        return self.state.set_role_permissions(self.roles[role] if isinstance(role, str) else role, permissions)

    def add_role(self, name: str, permissions: int) -> Role:
        """A new role above the others, held by nobody until ``set_member_roles``."""
        return self.state.add_role(name, permissions)

    def set_member_roles(self, user: UserLike | User, roles: Sequence[Role]) -> Member:
        """A member's roles (``@everyone`` is implied); ``user`` may be the bot, ``emu.bot_user``."""
        return self.state.set_member_roles(self._user(user), roles)

    def _user(self, user: UserLike) -> User:
        return self.users[user] if isinstance(user, str) else user

    def _channel(self, channel: ChannelLike) -> Channel:
        if isinstance(channel, Channel):
            return channel
        if isinstance(channel, str):
            return self.channels[channel]
        found = self.guild.channel(channel)
        if found is None:
            raise KeyError(f"no channel {channel}")
        return found

    # What happened -----------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        return self.state.requests

    @property
    def gateway_log(self) -> list[GatewayRecord]:
        return self.state.gateway_log

    @property
    def interactions(self) -> list[InteractionRecord]:
        return list(self.state.interactions.values())

    def find_requests(self, method: str | None = None, route: str | None = None) -> list[RequestRecord]:
        return [r for r in self.state.requests if r.matches(method, route)]

    def messages(self, channel: ChannelLike, *, include_deleted: bool = False) -> list[StoredMessage]:
        """The channel's messages, oldest first, ephemeral ones included."""
        return self.state.messages.in_channel(self._channel(channel).id, include_deleted=include_deleted)

    def message(self, message_id: int) -> StoredMessage:
        message = self.state.messages.get(message_id, include_deleted=True)
        if message is None:
            raise KeyError(f"no message {message_id}")
        return message

    def original_message(self, interaction: InteractionRecord) -> StoredMessage | None:
        message_id = interaction.original_message_id
        return self.state.messages.get(message_id, include_deleted=True) if message_id is not None else None

    def followups(self, interaction: InteractionRecord) -> list[StoredMessage]:
        return [self.message(message_id) for message_id in interaction.followup_ids]

    def commands(self, guild: Guild | int | None = None) -> list[dict[str, Any]]:
        """Registered commands: global ones, or the guild's with ``guild``."""
        return self.state.commands.in_scope(guild.id if isinstance(guild, Guild) else guild)

    def add_upload(self, filename: str, data: bytes, content_type: str | None = None) -> StoredAttachment:
        """Bytes a user "uploads" for an attachment option; served at the attachment's ``url``."""
        return self.state.messages.new_attachment(
            filename, data, content_type, folder="ephemeral-attachments", ephemeral=True
        )

    # Waiting -----------------------------------------------------------------------------------------------

    async def wait_for[T](
        self,
        condition: Callable[[], T | None],
        timeout: float = 5.0,  # noqa: ASYNC109
        description: str = "condition",
    ) -> T:
        """The first truthy ``condition()``, re-checked after every request, gateway frame and state change."""
        return await self.state.notifier.wait_for(condition, timeout, description)

    async def wait_for_request(
        self,
        predicate: Callable[[RequestRecord], bool] | None = None,
        *,
        method: str | None = None,
        route: str | None = None,
        since: int = 0,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> RequestRecord:
        """The first answered request from index ``since`` on that matches (``route``: fnmatch pattern)."""

        def found() -> RequestRecord | None:
            for record in self.state.requests[since:]:
                if record.matches(method, route) and (predicate is None or predicate(record)):
                    return record
            return None

        return await self.wait_for(found, timeout, f"request {method or ''} {route or ''}".strip())

    async def wait_for_gateway(
        self,
        predicate: Callable[[GatewayRecord], bool],
        *,
        since: int = 0,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> GatewayRecord:
        def found() -> GatewayRecord | None:
            return next((r for r in self.state.gateway_log[since:] if predicate(r)), None)

        return await self.wait_for(found, timeout, "gateway frame")

    async def wait_for_response(
        self,
        interaction: InteractionRecord,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> InteractionResponse:
        """The first accepted callback of ``interaction``."""
        return await self.wait_for(lambda: interaction.response, timeout, f"a response to interaction {interaction.id}")

    async def wait_for_command(
        self,
        name: str,
        *,
        guild: bool | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """A registered command named ``name`` (guild=True: guild only, False: global only, None: either)."""
        return await self.wait_for(lambda: self._lookup_command(name, guild), timeout, f"command /{name}")

    async def wait_until_connected(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self.wait_for(lambda: self.gateway.connected, timeout, "a live gateway session")

    # Driving the bot ---------------------------------------------------------------------------------------

    def _lookup_command(self, name: str, guild: bool | None = None, kind: int = 1) -> dict[str, Any] | None:
        scopes: list[int | None] = [self.guild.id] if guild else [None] if guild is False else [self.guild.id, None]
        return next((c for s in scopes if (c := self.state.commands.find(name, s, kind)) is not None), None)

    def _command(self, name: str) -> dict[str, Any]:
        command = self._lookup_command(name)
        if command is None:
            known = sorted({c["name"] for s in (None, self.guild.id) for c in self.state.commands.in_scope(s)})
            raise LookupError(f"/{name} is not registered (registered: {known})")
        return command

    async def dispatch(self, event: str, data: Any) -> int:
        """A raw gateway dispatch on the current session; returns its sequence number."""
        return await self.gateway.dispatch(event, data)

    async def _deliver(
        self,
        kind: InteractionType,
        data: dict[str, Any],
        user: User,
        channel: Channel,
        *,
        message: StoredMessage | None = None,
        locale: str | None = None,
    ) -> InteractionRecord:
        if self.gateway.current is None:
            await self.wait_for(lambda: self.gateway.current is not None, 5.0, "a gateway session")
        interaction_id = self.state.ids.next()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(64)
        payload = interaction_payload(
            interaction_id=interaction_id,
            token=token,
            kind=kind,
            data=data,
            application_id=self.application_id,
            guild=self.guild,
            channel=channel,
            user=user,
            locale=locale or self.config.locale,
            attachment_size_limit=self.config.interaction_attachment_size_limit,
            message=self.state.message_payload(message) if message is not None else None,
        )
        record = InteractionRecord(
            interaction_id,
            token,
            kind,
            data,
            user,
            channel,
            time.monotonic(),
            payload,
            message_id=message.id if message is not None else None,
        )
        self.state.add_interaction(record)
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        return record

    def _options(self, options: Mapping[str, Any] | None, attachments: Mapping[str, Any] | None) -> dict[str, Any]:
        merged = dict(options or {})
        for name, value in (attachments or {}).items():
            merged[name] = value if isinstance(value, StoredAttachment) else self.add_upload(*value)
        return merged

    async def send_slash_command(
        self,
        user: UserLike,
        channel: ChannelLike,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        attachments: Mapping[str, StoredAttachment | tuple[str, bytes]] | None = None,
        locale: str | None = None,
    ) -> InteractionRecord:
        """``user`` runs ``/name`` (``"group sub"`` for subcommands) in ``channel``.

        ``options`` maps option names to values: str, int, float, bool, a :class:`User`, :class:`Channel`,
        :class:`Role`, or a :class:`StoredAttachment` from :meth:`add_upload`; ``attachments`` maps attachment
        options to ``(filename, bytes)`` as a shortcut.
        """
        top, *path = name.split()
        user_ = self._user(user)
        data = command_data(self._command(top), path, self._options(options, attachments), guild=self.guild, user=user_)
        return await self._deliver(
            InteractionType.APPLICATION_COMMAND, data, user_, self._channel(channel), locale=locale
        )

    async def autocomplete(
        self,
        user: UserLike,
        channel: ChannelLike,
        name: str,
        options: Mapping[str, Any],
        focused: str,
        *,
        locale: str | None = None,
    ) -> InteractionRecord:
        """``user`` types in option ``focused`` of ``/name``; ``options`` are the raw (partial) values so far."""
        top, *path = name.split()
        user_ = self._user(user)
        data = command_data(self._command(top), path, dict(options), guild=self.guild, user=user_, focused=focused)
        kind = InteractionType.APPLICATION_COMMAND_AUTOCOMPLETE
        return await self._deliver(kind, data, user_, self._channel(channel), locale=locale)

    def _component(
        self, message: MessageLike, custom_id: str, kinds: frozenset[int]
    ) -> tuple[StoredMessage, Mapping[str, Any]]:
        stored = self.message(message if isinstance(message, int) else message.id)
        if stored.deleted:
            raise ValueError(f"message {stored.id} was deleted")
        component = stored.component(custom_id)
        if component is None or component.get("type") not in kinds:
            present = [c.get("custom_id") for c in stored.all_components() if c.get("type") in kinds]
            raise ValueError(f"message {stored.id} has no such component {custom_id!r} (has {present})")
        return stored, component

    async def click_button(self, user: UserLike, message: MessageLike, custom_id: str) -> InteractionRecord:
        """``user`` clicks the button ``custom_id`` on the message's current state."""
        stored, component = self._component(message, custom_id, frozenset({2}))
        data = component_data(component, None)
        channel = self._channel(stored.channel_id)
        return await self._deliver(InteractionType.MESSAGE_COMPONENT, data, self._user(user), channel, message=stored)

    async def select(
        self, user: UserLike, message: MessageLike, custom_id: str, values: Sequence[str]
    ) -> InteractionRecord:
        """``user`` picks ``values`` in the select menu ``custom_id``."""
        stored, component = self._component(message, custom_id, SELECT_TYPES)
        data = component_data(component, values)
        channel = self._channel(stored.channel_id)
        return await self._deliver(InteractionType.MESSAGE_COMPONENT, data, self._user(user), channel, message=stored)

    async def submit_modal(
        self,
        user: UserLike,
        source: InteractionRecord | MessageLike,
        custom_id: str,
        values: Mapping[str, str],
    ) -> InteractionRecord:
        """``user`` submits the modal ``custom_id`` the bot opened in answer to ``source``.

        ``source`` is the interaction answered with the modal, or the message whose component opened it.
        """
        if isinstance(source, InteractionRecord):
            origin: InteractionRecord | None = source
        else:
            message_id = source if isinstance(source, int) else source.id
            origin = next(
                (
                    r
                    for r in reversed(self.interactions)
                    if r.message_id == message_id and r.modal and r.modal.get("custom_id") == custom_id
                ),
                None,
            )
        modal = origin.modal if origin is not None else None
        if origin is None or modal is None or modal.get("custom_id") != custom_id:
            raise ValueError(f"no modal {custom_id!r} was opened for {source!r}")
        data = modal_submit_data(modal, values)
        message = self.state.messages.get(origin.message_id) if origin.message_id is not None else None
        kind = InteractionType.MODAL_SUBMIT
        return await self._deliver(kind, data, self._user(user), origin.channel, message=message)
