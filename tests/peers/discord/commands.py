"""Registered application commands, global and per guild, with Discord's upsert and overwrite rules.

A POST with the name and type of an existing command updates it in place (same id, new version); a PUT
replaces the whole scope, keeping the ids of commands whose name and type survive. What is stored is what the
client sent plus the fields Discord adds (``id``, ``application_id``, ``version``, ``guild_id``,
``default_member_permissions``), so nextcord's own payload comparison finds the commands unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .snowflake import SnowflakeGenerator

Scope = int | None  # a guild id, or None for global commands


class CommandRegistry:
    def __init__(self, ids: SnowflakeGenerator, application_id: int) -> None:
        self._ids = ids
        self._application_id = application_id
        self._scopes: dict[Scope, dict[int, dict[str, Any]]] = {}

    def in_scope(self, scope: Scope) -> list[dict[str, Any]]:
        return list(self._scopes.get(scope, {}).values())

    def get(self, scope: Scope, command_id: int) -> dict[str, Any] | None:
        return self._scopes.get(scope, {}).get(command_id)

    def find(self, name: str, scope: Scope, kind: int = 1) -> dict[str, Any] | None:
        return next(
            (c for c in self.in_scope(scope) if c["name"] == name and c.get("type", 1) == kind),
            None,
        )

    def _stored(self, scope: Scope, payload: Mapping[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
        command: dict[str, Any] = {
            "type": 1,
            "default_member_permissions": None,
            "nsfw": False,
            **payload,
            "id": previous["id"] if previous else str(self._ids.next()),
            "application_id": str(self._application_id),
            "version": str(self._ids.next()),
        }
        if scope is not None:
            command["guild_id"] = str(scope)
        else:
            command.pop("guild_id", None)
        return command

    def upsert(self, scope: Scope, payload: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Creates or updates by (name, type); returns the command and whether it was created."""
        previous = self.find(str(payload.get("name")), scope, int(payload.get("type", 1)))
        command = self._stored(scope, payload, previous)
        self._scopes.setdefault(scope, {})[int(command["id"])] = command
        return command, previous is None

    def overwrite(self, scope: Scope, payloads: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        old = self._scopes.get(scope, {})
        new: dict[int, dict[str, Any]] = {}
        for payload in payloads:
            previous = next(
                (
                    c
                    for c in old.values()
                    if c["name"] == payload.get("name") and c.get("type", 1) == payload.get("type", 1)
                ),
                None,
            )
            command = self._stored(scope, payload, previous)
            new[int(command["id"])] = command
        self._scopes[scope] = new
        return list(new.values())

    def edit(self, scope: Scope, command_id: int, changes: Mapping[str, Any]) -> dict[str, Any] | None:
        previous = self.get(scope, command_id)
        if previous is None:
            return None
        command = self._stored(scope, {**previous, **changes}, previous)
        self._scopes[scope][command_id] = command
        return command

    def delete(self, scope: Scope, command_id: int) -> bool:
        return self._scopes.get(scope, {}).pop(command_id, None) is not None
