"""Switchable faults: 429 storms, 5xx answers, expired interaction tokens, gateway drops and reconnects.

HTTP faults are rules matched against each API request before it is handled: ``route`` is an fnmatch pattern
tried against both the route template (``/channels/{channel_id}/messages/{message_id}``) and the real path
(``/channels/123/messages/456``), ``method`` narrows it. A rule fires for its next ``count`` matching requests,
or for every matching request during ``duration`` seconds, whichever is given. ``hits`` keeps the monotonic
times at which it fired. A 429's ``retry_after`` and a storm's ``duration`` are Discord seconds: the rule keeps
them multiplied by ``config.time_scale`` as it was when the rule was made (``rule.retry_after``, ``rule.until``
are real time).
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .interactions import InteractionRecord

if TYPE_CHECKING:
    from .gateway import GatewayServer
    from .state import EmulatorState


@dataclass
class FaultRule:
    kind: Literal["rate_limit", "server_error", "slow"]
    route: str
    method: str | None
    count: int | None
    until: float | None
    status: int = 429
    retry_after: float = 0.25
    is_global: bool = False
    hits: list[float] = field(default_factory=list)
    #: ``X-RateLimit-Scope`` of an injected 429: ``user``, ``global`` or ``shared``.
    scope: str = "user"
    #: A ``slow`` rule: real seconds between doing the request and answering it.
    delay: float = 0.0

    def active(self, now: float) -> bool:
        if self.count is not None and len(self.hits) >= self.count:
            return False
        return self.until is None or now < self.until

    def matches(self, method: str, route: str | None, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return fnmatch.fnmatchcase(path, self.route) or (route is not None and fnmatch.fnmatchcase(route, self.route))


class Faults:
    def __init__(self, state: EmulatorState, gateway: GatewayServer) -> None:
        self._state = state
        self._gateway = gateway
        self.rules: list[FaultRule] = []

    def _add(self, rule: FaultRule) -> FaultRule:
        if rule.count is None and rule.until is None:
            raise ValueError("a fault needs a count or a duration")
        self.rules.append(rule)
        return rule

    def rate_limit(
        self,
        route: str = "*",
        *,
        method: str | None = None,
        count: int | None = 1,
        duration: float | None = None,
        retry_after: float = 0.25,
        is_global: bool = False,
        scope: Literal["user", "global", "shared"] = "user",
    ) -> FaultRule:
        """429 with Discord's body and headers for matching requests (``count=None`` with ``duration``: a storm).

        ``is_global`` (or ``scope="global"``) makes it the global limit's 429. ``scope="shared"`` makes it a
        resource's shared limit: the route headers then show the bucket as it is (room left), as on Discord.
        The request counts against no bucket either way."""
        if is_global:
            scope = "global"
        config = self._state.config
        until = time.monotonic() + config.scaled(duration) if duration is not None else None
        rule = FaultRule(
            "rate_limit", route, method, count, until, 429, config.scaled(retry_after), scope == "global", scope=scope
        )
        return self._add(rule)

    def server_error(
        self, route: str = "*", *, method: str | None = None, count: int = 1, status: int = 500
    ) -> FaultRule:
        """``status`` (500, 502, 503, ...) for the next ``count`` matching requests."""
        if status < 500:
            raise ValueError("server_error takes a 5xx status")
        return self._add(FaultRule("server_error", route, method, count, None, status))

    def slow(self, route: str = "*", *, method: str | None = None, count: int = 1, delay: float = 0.3) -> FaultRule:
        """The next ``count`` matching requests are carried out at once (a message is created, an edit made) but
        answered ``delay`` Discord seconds later: a slow network or a busy Discord, where a client that gives up
        on the answer never learns what it made."""
        config = self._state.config
        return self._add(FaultRule("slow", route, method, count, None, 200, delay=config.scaled(delay)))

    def take(self, method: str, route: str | None, path: str) -> FaultRule | None:
        """The first active rule matching this request, counted as fired."""
        now = time.monotonic()
        for rule in self.rules:
            if rule.active(now) and rule.matches(method, route, path):
                rule.hits.append(now)
                return rule
        return None

    def clear(self) -> None:
        self.rules.clear()

    # Interaction tokens ------------------------------------------------------------------------------------

    def expire_token(self, interaction: InteractionRecord) -> None:
        """Webhook calls with this interaction's token now get 401 / 50027, as after 15 minutes."""
        interaction.token_revoked = True

    def set_token_lifetime(self, seconds: float) -> None:
        """Tokens of interactions older than ``seconds`` are expired (the default is Discord's 15 minutes)."""
        self._state.config.token_lifetime = seconds

    # Gateway -----------------------------------------------------------------------------------------------

    async def drop_gateway(self, *, code: int | None = None) -> None:
        """Drops the client's websocket: abruptly (no close frame) or, with ``code``, with that close code."""
        await self._gateway.drop(code=code)

    async def request_reconnect(self) -> None:
        """Sends op 7 RECONNECT; the client should reconnect and RESUME."""
        await self._gateway.send_reconnect()

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Sends op 9 INVALID_SESSION; not resumable means the client must IDENTIFY anew."""
        await self._gateway.invalidate_session(resumable=resumable)
