"""Messages and attachments as Discord keeps them, with Discord's create/edit semantics.

- A create takes ``content``, ``embeds``, ``components``, ``flags``, ``message_reference`` and the uploaded files;
  each new file is matched to its ``attachments`` entry (``{"id": n}`` for ``files[n]``) for filename and
  description.
- An edit changes only the fields it names. If it names ``attachments``, existing attachments not listed there
  are removed; new files are always added. A deferred message's LOADING flag is cleared by its first edit.
- Every attachment's bytes are kept and served by the emulator at ``url`` / ``proxy_url``.

Each message keeps its history of states (``history``), so tests can see every edit the bot made.
"""

from __future__ import annotations

import mimetypes
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .limits import walk_components
from .models import User
from .records import FileRecord
from .snowflake import SnowflakeGenerator, iso_timestamp

EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_EMBEDS = 1 << 2
#: Flags a client may set on a message; the others are Discord's to set.
CLIENT_FLAGS = SUPPRESS_EMBEDS | EPHEMERAL | (1 << 12) | (1 << 15)

_FILE_FIELD = re.compile(r"^files\[(\d+)\]$")


@dataclass
class StoredAttachment:
    id: int
    filename: str
    data: bytes
    content_type: str | None
    url: str
    proxy_url: str
    description: str | None = None
    ephemeral: bool = False

    @property
    def size(self) -> int:
        return len(self.data)

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.proxy_url,
        }
        if self.content_type is not None:
            data["content_type"] = self.content_type
        if self.description is not None:
            data["description"] = self.description
        if self.ephemeral:
            data["ephemeral"] = True
        return data


@dataclass(frozen=True)
class MessageSnapshot:
    """One state of a message; ``time`` is monotonic."""

    time: float
    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    attachment_ids: tuple[int, ...]
    flags: int


@dataclass
class StoredMessage:
    id: int
    channel_id: int
    guild_id: int
    author: User
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    attachments: list[StoredAttachment] = field(default_factory=list)
    type: int = 0
    created: float = field(default_factory=time.time)
    edited: float | None = None
    message_reference: dict[str, Any] | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    interaction: dict[str, Any] | None = None
    deleted: bool = False
    history: list[MessageSnapshot] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)

    @property
    def edit_count(self) -> int:
        return len(self.history) - 1

    def all_components(self) -> Iterator[Mapping[str, Any]]:
        return walk_components(self.components)

    def component(self, custom_id: str) -> Mapping[str, Any] | None:
        return next((c for c in self.all_components() if c.get("custom_id") == custom_id), None)

    @property
    def buttons(self) -> list[Mapping[str, Any]]:
        return [c for c in self.all_components() if c.get("type") == 2]

    def snapshot(self) -> None:
        self.history.append(
            MessageSnapshot(
                time.monotonic(),
                self.content,
                list(self.embeds),
                list(self.components),
                tuple(a.id for a in self.attachments),
                self.flags,
            )
        )

    def payload(self, referenced: StoredMessage | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "guild_id": str(self.guild_id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": iso_timestamp(self.created),
            "edited_timestamp": iso_timestamp(self.edited) if self.edited is not None else None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [attachment.payload() for attachment in self.attachments],
            "embeds": self.embeds,
            "components": self.components,
            "pinned": False,
            "type": self.type,
            "flags": self.flags,
        }
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.interaction_metadata is not None:
            data["interaction_metadata"] = self.interaction_metadata
        if self.interaction is not None:
            data["interaction"] = self.interaction
        if self.message_reference is not None:
            data["message_reference"] = self.message_reference
            data["referenced_message"] = referenced.payload() if referenced is not None else None
        return data


def _normalise_embeds(embeds: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "rich", **embed} for embed in embeds]


class MessageStore:
    """Every message and attachment the emulator knows, by id."""

    def __init__(self, ids: SnowflakeGenerator, base_url: Callable[[], str]) -> None:
        self._ids = ids
        self._base_url = base_url
        self.messages: dict[int, StoredMessage] = {}
        self.attachments: dict[int, StoredAttachment] = {}

    def new_attachment(
        self,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        *,
        description: str | None = None,
        folder: str = "attachments",
        ephemeral: bool = False,
    ) -> StoredAttachment:
        """Keeps ``data`` and serves it at ``{base}/cdn/{folder}/{id}/{filename}`` (and ``/media/...``)."""
        attachment_id = self._ids.next()
        if content_type in (None, "application/octet-stream"):
            content_type = mimetypes.guess_type(filename)[0] or content_type
        path = f"{folder}/{attachment_id}/{filename}"
        base = self._base_url()
        attachment = StoredAttachment(
            attachment_id,
            filename,
            data,
            content_type,
            f"{base}/cdn/{path}",
            f"{base}/media/{path}",
            description,
            ephemeral,
        )
        self.attachments[attachment_id] = attachment
        return attachment

    def _new_files(
        self, payload: Mapping[str, Any], files: Sequence[FileRecord], ephemeral: bool
    ) -> list[StoredAttachment]:
        entries = {
            str(entry.get("id")): entry for entry in payload.get("attachments") or [] if isinstance(entry, Mapping)
        }
        stored = []
        for position, upload in enumerate(files):
            match = _FILE_FIELD.match(upload.field)
            entry = entries.get(match.group(1) if match else str(position), {})
            stored.append(
                self.new_attachment(
                    entry.get("filename") or upload.filename,
                    upload.data,
                    upload.content_type,
                    description=entry.get("description"),
                    ephemeral=ephemeral,
                )
            )
        return stored

    def create(
        self,
        *,
        channel_id: int,
        guild_id: int,
        author: User,
        payload: Mapping[str, Any],
        files: Sequence[FileRecord] = (),
        message_type: int = 0,
        extra_flags: int = 0,
        **metadata: Any,
    ) -> StoredMessage:
        flags = (int(payload.get("flags") or 0) & CLIENT_FLAGS) | extra_flags
        message = StoredMessage(
            id=self._ids.next(),
            channel_id=channel_id,
            guild_id=guild_id,
            author=author,
            content=payload.get("content") or "",
            embeds=_normalise_embeds(payload.get("embeds") or []),
            components=list(payload.get("components") or []),
            flags=flags,
            type=message_type,
            message_reference=payload.get("message_reference"),
            **metadata,
        )
        message.attachments = self._new_files(payload, files, message.ephemeral)
        message.snapshot()
        self.messages[message.id] = message
        return message

    def edit(
        self, message: StoredMessage, payload: Mapping[str, Any], files: Sequence[FileRecord] = ()
    ) -> StoredMessage:
        if "content" in payload:
            message.content = payload["content"] or ""
        if "embeds" in payload:
            message.embeds = _normalise_embeds(payload["embeds"] or [])
        if "components" in payload:
            message.components = list(payload["components"] or [])
        if payload.get("flags") is not None:
            # Only SUPPRESS_EMBEDS can change after creation; ephemerality and the like stay.
            message.flags = (message.flags & ~SUPPRESS_EMBEDS) | (int(payload["flags"]) & SUPPRESS_EMBEDS)
        if isinstance(payload.get("attachments"), list):
            keep = {str(entry.get("id")) for entry in payload["attachments"] if isinstance(entry, Mapping)}
            message.attachments = [a for a in message.attachments if str(a.id) in keep]
        message.attachments = message.attachments + self._new_files(payload, files, message.ephemeral)
        message.flags &= ~LOADING
        message.edited = time.time()
        message.snapshot()
        return message

    def delete(self, message: StoredMessage) -> None:
        message.deleted = True

    def get(self, message_id: int, *, include_deleted: bool = False) -> StoredMessage | None:
        message = self.messages.get(message_id)
        if message is None or (message.deleted and not include_deleted):
            return None
        return message

    def in_channel(
        self, channel_id: int, *, include_deleted: bool = False, include_ephemeral: bool = True
    ) -> list[StoredMessage]:
        return [
            message
            for message in self.messages.values()
            if message.channel_id == channel_id
            and (include_deleted or not message.deleted)
            and (include_ephemeral or not message.ephemeral)
        ]
