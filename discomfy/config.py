"""Configuration: one TOML file plus environment overrides, validated into one frozen ``Settings`` object.

How it works: ``load_settings`` reads ``discomfy.toml`` (or the file named by ``DISCOMFY_CONFIG``), lays the
environment overrides over it (``ENV_OVERRIDES``), then checks every setting and collects *all* problems into
one ``ConfigError`` whose text names the setting and says how to fix it. Callers print that report; a config
mistake never ends in a traceback.

Rules: this module does no I/O besides reading the one file, and never logs or prints the token.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from discomfy.errors import ConfigError, MissingTokenError

DEFAULT_CONFIG_FILE = "discomfy.toml"
DISCORD_API_BASE = "https://discord.com/api/v10"
MIB = 1024 * 1024


@dataclass(frozen=True)
class DiscordSettings:
    token: str = field(default="", repr=False)
    api_base: str = DISCORD_API_BASE
    #: Register commands in these guilds (instant) instead of globally (can take up to an hour to show).
    guild_ids: tuple[int, ...] = ()
    #: Used when an interaction does not carry ``attachment_size_limit``.
    upload_limit_bytes: int = 10 * MIB


@dataclass(frozen=True)
class ComfySettings:
    servers: tuple[str, ...] = ("http://127.0.0.1:8188",)
    #: Jobs sent to one server at a time; the rest wait in our own queue.
    max_jobs_per_server: int = 2
    request_timeout: float = 30.0


@dataclass(frozen=True)
class StorageSettings:
    data_dir: Path = Path("data")
    max_output_files: int = 100
    max_output_bytes: int = 2048 * MIB

    @property
    def database_path(self) -> Path:
        return self.data_dir / "discomfy.sqlite3"

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"


#: How much one job of each kind counts in the fair queue (a user whose last job was heavy waits longer).
DEFAULT_WEIGHTS: dict[str, int] = {"image": 1, "upscale": 2, "video": 4}


@dataclass(frozen=True)
class LimitSettings:
    commands_per_minute: int = 6
    max_jobs_per_user: int = 3
    max_jobs_total: int = 50
    max_prompt_length: int = 1500
    #: Kind (image, upscale, video) → weight in our fair queue.
    weights: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))


@dataclass(frozen=True)
class PermissionSettings:
    #: Empty means every channel / every role.
    allowed_channels: tuple[int, ...] = ()
    allowed_roles: tuple[int, ...] = ()
    #: Members with one of these roles are not rate-limited or capped.
    bypass_roles: tuple[int, ...] = ()


#: Model files the shipped workflows use, by role; a workflow manifest refers to them as ``{models.ROLE}``.
DEFAULT_MODELS: dict[str, str] = {
    "checkpoint": "v1-5-pruned-emaonly.safetensors",
    "upscale_model": "RealESRGAN_x4plus.pth",
    "video_checkpoint": "svd_xt.safetensors",
}


@dataclass(frozen=True)
class Settings:
    discord: DiscordSettings = DiscordSettings()
    comfyui: ComfySettings = ComfySettings()
    storage: StorageSettings = StorageSettings()
    limits: LimitSettings = LimitSettings()
    permissions: PermissionSettings = PermissionSettings()
    #: Role → model file name on the ComfyUI servers (see ``DEFAULT_MODELS``).
    models: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    workflows_dir: Path = Path("workflows")
    log_level: str = "INFO"


#: Environment variable → (section, key, parser of the string). Secrets belong here rather than in the file.
ENV_OVERRIDES: dict[str, tuple[str, str, Callable[[str], Any]]] = {
    "DISCORD_TOKEN": ("discord", "token", str.strip),
    "DISCORD_API_BASE": ("discord", "api_base", str.strip),
    "DISCORD_GUILD_IDS": ("discord", "guild_ids", lambda s: [p.strip() for p in s.split(",") if p.strip()]),
    "COMFYUI_URL": ("comfyui", "servers", lambda s: [p.strip() for p in s.split(",") if p.strip()]),
    "DISCOMFY_DATA_DIR": ("storage", "data_dir", str.strip),
    "DISCOMFY_WORKFLOWS_DIR": ("", "workflows_dir", str.strip),
    "DISCOMFY_LOG_LEVEL": ("", "log_level", str.strip),
}

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_SECTION_KEYS = {
    "discord": {"token", "api_base", "guild_ids", "upload_limit_mb"},
    "comfyui": {"servers", "max_jobs_per_server", "request_timeout"},
    "storage": {"data_dir", "max_output_files", "max_output_mb"},
    "limits": {"commands_per_minute", "max_jobs_per_user", "max_jobs_total", "max_prompt_length", "weights"},
    "permissions": {"allowed_channels", "allowed_roles", "bypass_roles"},
}


def load_settings(
    path: Path | None = None, environ: Mapping[str, str] | None = None, *, require_token: bool = True
) -> Settings:
    """Read the TOML file (if it exists), apply environment overrides, validate, return ``Settings``.

    ``path`` defaults to ``$DISCOMFY_CONFIG`` or ``./discomfy.toml``; a missing default file is fine (all
    defaults), a missing explicitly named file is a ``ConfigError``.
    """
    env = os.environ if environ is None else environ
    explicit = path is not None or "DISCOMFY_CONFIG" in env
    file = Path(path if path is not None else env.get("DISCOMFY_CONFIG", DEFAULT_CONFIG_FILE))
    raw: dict[str, Any] = {}
    if file.exists():
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{file} is not valid TOML: {exc}. Compare it with discomfy.example.toml."]) from exc
        except OSError as exc:
            raise ConfigError([f"{file} cannot be read: {exc.strerror}."]) from exc
    elif explicit:
        raise ConfigError([f"the configuration file {file} does not exist (copy discomfy.example.toml)."])
    for var, (section, key, parse) in ENV_OVERRIDES.items():
        value = env.get(var)
        if value is None or value.strip() == "":
            continue
        target = raw.setdefault(section, {}) if section else raw
        if not isinstance(target, dict):
            raise ConfigError([f"[{section}] in {file} must be a table (a [{section}] header)."])
        target[key] = parse(value)
    settings = _Validator(raw, file.name).settings()
    if require_token and not settings.discord.token:
        raise MissingTokenError()
    return settings


class _Validator:
    """Turns the raw TOML dict into ``Settings``, collecting every problem instead of stopping at the first."""

    def __init__(self, raw: dict[str, Any], source: str) -> None:
        self.raw = raw
        self.source = source
        self.problems: list[str] = []

    def settings(self) -> Settings:
        known = {"discord", "comfyui", "storage", "limits", "permissions", "models", "workflows_dir", "log_level"}
        for key in self.raw:
            if key not in known:
                self.problems.append(f"unknown setting '{key}' in {self.source}; known: {', '.join(sorted(known))}.")
        d, c, s, lim, p = (self._section(n) for n in ("discord", "comfyui", "storage", "limits", "permissions"))
        discord = DiscordSettings(
            token=self._str(d, "discord.token", ""),
            api_base=self._url(d, "discord.api_base", DISCORD_API_BASE).rstrip("/"),
            guild_ids=self._ids(d, "discord.guild_ids"),
            upload_limit_bytes=int(self._number(d, "discord.upload_limit_mb", 10, low=1, high=500) * MIB),
        )
        servers = self._list(c, "comfyui.servers", ["http://127.0.0.1:8188"])
        if "servers" in c and not servers:
            self.problems.append("comfyui.servers is empty: give at least one ComfyUI URL (or set COMFYUI_URL).")
        for i, url in enumerate(servers):
            self._check_url(f"comfyui.servers[{i}]", url)
        comfyui = ComfySettings(
            servers=tuple(str(u).rstrip("/") for u in servers),
            max_jobs_per_server=int(self._number(c, "comfyui.max_jobs_per_server", 2, low=1, high=64)),
            request_timeout=float(self._number(c, "comfyui.request_timeout", 30.0, low=1, high=600)),
        )
        storage = StorageSettings(
            data_dir=Path(self._str(s, "storage.data_dir", "data")),
            max_output_files=int(self._number(s, "storage.max_output_files", 100, low=1, high=1_000_000)),
            max_output_bytes=int(self._number(s, "storage.max_output_mb", 2048, low=10, high=10**7) * MIB),
        )
        limits = LimitSettings(
            commands_per_minute=int(self._number(lim, "limits.commands_per_minute", 6, low=1, high=1000)),
            max_jobs_per_user=int(self._number(lim, "limits.max_jobs_per_user", 3, low=1, high=1000)),
            max_jobs_total=int(self._number(lim, "limits.max_jobs_total", 50, low=1, high=100_000)),
            max_prompt_length=int(self._number(lim, "limits.max_prompt_length", 1500, low=10, high=6000)),
            weights=self._weights(lim),
        )
        permissions = PermissionSettings(
            allowed_channels=self._ids(p, "permissions.allowed_channels"),
            allowed_roles=self._ids(p, "permissions.allowed_roles"),
            bypass_roles=self._ids(p, "permissions.bypass_roles"),
        )
        models = dict(DEFAULT_MODELS)
        raw_models = self.raw.get("models", {})
        if not isinstance(raw_models, dict):
            self.problems.append("'models' must be a table: write it as a [models] section of role = \"file\".")
            raw_models = {}
        for role, name in raw_models.items():
            if isinstance(name, str) and name.strip():
                models[role] = name.strip()
            else:
                self.problems.append(f"models.{role} must be a model file name in quotes, not {name!r}.")
        level = self._str(self.raw, "log_level", "INFO").upper()
        if level not in _LOG_LEVELS:
            self.problems.append(f"log_level '{level}' is not one of {', '.join(_LOG_LEVELS)}.")
        settings = Settings(
            discord=discord,
            comfyui=comfyui,
            storage=storage,
            limits=limits,
            permissions=permissions,
            models=models,
            workflows_dir=Path(self._str(self.raw, "workflows_dir", "workflows")),
            log_level=level,
        )
        if self.problems:
            raise ConfigError(self.problems)
        return settings

    # -- typed getters: each records a problem and returns the default on a bad value --

    def _section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            self.problems.append(f"'{name}' must be a table: write it as a [{name}] section.")
            return {}
        for key in value:
            if key not in _SECTION_KEYS[name]:
                known = ", ".join(sorted(_SECTION_KEYS[name]))
                self.problems.append(f"unknown setting '{name}.{key}' in {self.source}; [{name}] knows: {known}.")
        return value

    def _weights(self, table: dict[str, Any]) -> dict[str, int]:
        weights = dict(DEFAULT_WEIGHTS)
        raw = table.get("weights", {})
        if not isinstance(raw, dict):
            self.problems.append("limits.weights must be a table, e.g. weights = { image = 1, video = 4 }.")
            return weights
        for kind, value in raw.items():
            if kind not in DEFAULT_WEIGHTS:
                self.problems.append(f"limits.weights.{kind}: the kinds are {', '.join(DEFAULT_WEIGHTS)}.")
            elif isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
                self.problems.append(f"limits.weights.{kind} must be a whole number from 1 to 100, not {value!r}.")
            else:
                weights[kind] = value
        return weights

    def _get(self, table: dict[str, Any], dotted: str) -> Any:
        return table.get(dotted.rsplit(".", 1)[-1])

    def _str(self, table: dict[str, Any], dotted: str, default: str) -> str:
        value = self._get(table, dotted)
        if value is None:
            return default
        if not isinstance(value, str):
            self.problems.append(f"{dotted} must be a string in quotes, not {value!r}.")
            return default
        return value

    def _number(self, table: dict[str, Any], dotted: str, default: float, *, low: float, high: float) -> float:
        value = self._get(table, dotted)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problems.append(f"{dotted} must be a number between {low:g} and {high:g}, not {value!r}.")
            return default
        if not low <= value <= high:
            self.problems.append(f"{dotted} is {value:g}; it must be between {low:g} and {high:g}.")
            return default
        return value

    def _list(self, table: dict[str, Any], dotted: str, default: list[Any]) -> list[Any]:
        value = self._get(table, dotted)
        if value is None:
            return default
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            self.problems.append(f'{dotted} must be a list like ["...", "..."], not {value!r}.')
            return default
        return value

    def _ids(self, table: dict[str, Any], dotted: str) -> tuple[int, ...]:
        ids: list[int] = []
        for item in self._list(table, dotted, []):
            try:
                snowflake = int(item)
            except (TypeError, ValueError):
                snowflake = -1
            if snowflake <= 0 or isinstance(item, bool | float):
                self.problems.append(
                    f"{dotted}: {item!r} is not a Discord id (a long number; in Discord turn on Developer "
                    "Mode, then right-click → Copy ID)."
                )
                continue
            ids.append(snowflake)
        return tuple(ids)

    def _url(self, table: dict[str, Any], dotted: str, default: str) -> str:
        value = self._str(table, dotted, default)
        self._check_url(dotted, value)
        return value

    def _check_url(self, dotted: str, value: object) -> None:
        if not isinstance(value, str):
            self.problems.append(f'{dotted} must be a URL string like "http://127.0.0.1:8188", not {value!r}.')
            return
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problems.append(
                f'{dotted} is {value!r}, which is not an http(s) URL; write it like "http://127.0.0.1:8188".'
            )
        else:
            try:
                _ = parts.port
            except ValueError:
                self.problems.append(f"{dotted} is {value!r}, whose port is not a number from 1 to 65535.")
