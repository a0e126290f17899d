"""Configuration: one TOML file plus environment overrides, validated into one frozen ``Settings`` object.

The dataclasses below are the one source of truth. A field's name is its TOML key (a field holding a dataclass
is a ``[section]``), its default is the default, and ``setting(...)`` declares the rest beside it, once: the
environment variable that overrides it, bounds, allowed values, URL check. ``load_settings`` reads
``discomfy.toml`` (or the file named by ``DISCOMFY_CONFIG``), lets non-blank environment variables win over the
file, and checks every field from its annotation, collecting *all* problems (unknown keys too) into one
``ConfigError`` whose text names the setting and says how to fix it. A config mistake never ends in a traceback.

Rules: this module does no I/O besides reading the one file (and its mode: a file that holds the token and that
group or others may read draws a warning); the token is never logged, printed, repeated in a report or shown by
``repr``; a URL's credentials are shown only through ``redact_url``. A new setting is one field here plus its
line in ``discomfy.example.toml`` (and a README row if it has an environment variable); tests/test_config_docs.py
checks both.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints
from urllib.parse import unquote, urlsplit, urlunsplit

from discomfy.errors import ConfigError, MissingTokenError
from discomfy.logs import REDACTED

DEFAULT_CONFIG_FILE = "discomfy.toml"
#: Environment variable naming the TOML file (instead of ``./discomfy.toml``).
CONFIG_ENV = "DISCOMFY_CONFIG"
DISCORD_API_BASE = "https://discord.com/api/v10"
MIB = 1024 * 1024
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("TEXT", "JSON")
DISCORD_ID = "a Discord id (a long number; in Discord turn on Developer Mode, then right-click → Copy ID)"
_RULE = "discomfy.rule"


@dataclass(frozen=True)
class Rule:
    """What a setting accepts beyond its annotated type. For a tuple the checks apply to each item (``nonempty``
    to the tuple itself); for a mapping, to each value."""

    env: str | None = None  # this environment variable, when set and not blank, wins over the file
    low: float | None = None  # numbers: inclusive bounds
    high: float | None = None
    choices: tuple[str, ...] = ()  # strings: one of these, in any case; stored upper-case
    url: bool = False  # strings: an http(s) URL; stored without a trailing "/"
    nonempty: bool = False  # a string must not be blank; a tuple must have an item
    closed: bool = False  # a mapping: only the default's keys are allowed
    what: str = ""  # how a good value looks, for the report (else said from the type and bounds)
    secret: bool = False  # never shown: not in a report, not in repr


def setting(default: Any = MISSING, *, factory: Any = MISSING, **rule: Any) -> Any:
    """A dataclass field with its ``Rule``: ``setting(6, low=1, high=1000)``, ``setting(factory=dict, closed=True)``."""
    checks = Rule(**rule)
    return field(default=default, default_factory=factory, repr=not checks.secret, metadata={_RULE: checks})


@dataclass(frozen=True)
class DiscordSettings:
    #: Prefer the environment variable; a token in the file means the file must stay private.
    token: str = setting("", env="DISCORD_TOKEN", secret=True)
    #: Change only to use a Discord REST proxy (or the test suite's emulator).
    api_base: str = setting(DISCORD_API_BASE, env="DISCORD_API_BASE", url=True)
    #: Register commands in these guilds (instant) instead of globally (can take up to an hour to show).
    guild_ids: tuple[int, ...] = setting((), env="DISCORD_GUILD_IDS", low=1, what=DISCORD_ID)
    #: MiB per message, used when an interaction does not carry ``attachment_size_limit``.
    upload_limit_mb: float = setting(10.0, low=1, high=500)
    #: Seconds between two edits of one progress message (Discord's buckets, read from its answers, come on top).
    progress_interval: float = setting(1.0, low=0.2, high=30)

    @property
    def upload_limit_bytes(self) -> int:
        return int(self.upload_limit_mb * MIB)


@dataclass(frozen=True)
class ComfySettings:
    servers: tuple[str, ...] = setting(("http://127.0.0.1:8188",), env="COMFYUI_URL", url=True, nonempty=True)
    #: Jobs sent to one server at a time; the rest wait in our own queue.
    max_jobs_per_server: int = setting(2, low=1, high=64)
    #: Seconds.
    request_timeout: float = setting(30.0, low=1, high=600)
    #: MiB: a result file (``GET /view``) larger than this is not downloaded, and its job fails "too large".
    #: Well above Discord's largest upload limit (500 MiB) so a real result is never refused.
    max_download_mb: float = setting(512.0, low=1, high=16384)

    @property
    def max_download_bytes(self) -> int:
        return int(self.max_download_mb * MIB)


@dataclass(frozen=True)
class StorageSettings:
    # RUF009 cannot see that setting() is a field specifier; Path is immutable.
    data_dir: Path = setting(Path("data"), env="DISCOMFY_DATA_DIR")  # noqa: RUF009
    max_output_files: int = setting(100, low=1, high=1_000_000)
    max_output_mb: float = setting(2048.0, low=10, high=10**7)

    @property
    def max_output_bytes(self) -> int:
        return int(self.max_output_mb * MIB)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "discomfy.sqlite3"

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    @property
    def uploaded_workflows_dir(self) -> Path:
        """Workflows added from Discord (``/workflow add``), beside the shipped ``workflows_dir``."""
        return self.data_dir / "workflows"


#: How much one job of each kind counts in the fair queue (a user whose last job was heavy waits longer).
DEFAULT_WEIGHTS: dict[str, int] = {"image": 1, "upscale": 2, "video": 4}


@dataclass(frozen=True)
class LimitSettings:
    commands_per_minute: int = setting(6, low=1, high=1000)
    max_jobs_per_user: int = setting(3, low=1, high=1000)
    max_jobs_total: int = setting(50, low=1, high=100_000)
    max_prompt_length: int = setting(1500, low=10, high=6000)
    #: Kind (image, upscale, video) → weight in our fair queue; a table overrides some kinds, keeps the rest.
    weights: Mapping[str, int] = setting(factory=lambda: dict(DEFAULT_WEIGHTS), closed=True, low=1, high=100)
    #: Presets one member may keep in one server (``/preset save``).
    max_presets_per_user: int = setting(25, low=1, high=1000)


@dataclass(frozen=True)
class PermissionSettings:
    #: Empty means every channel / every role.
    allowed_channels: tuple[int, ...] = setting((), low=1, what=DISCORD_ID)
    allowed_roles: tuple[int, ...] = setting((), low=1, what=DISCORD_ID)
    #: Members with one of these roles are not rate-limited or capped.
    bypass_roles: tuple[int, ...] = setting((), low=1, what=DISCORD_ID)


@dataclass(frozen=True)
class WorkflowUploadSettings:
    """``/workflow add``: who may add workflows from Discord, and what an upload may contain."""

    #: Empty means members with Manage Server (checked by us on every use, not only by hiding the command).
    admin_roles: tuple[int, ...] = setting((), low=1, what=DISCORD_ID)
    #: Node types allowed beyond the servers' built-in ones (e.g. a custom node you trust); exact class names.
    extra_nodes: tuple[str, ...] = setting((), what='a node class name in quotes, like "IPAdapter"')
    #: KiB: an API-format export larger than this is refused before it is downloaded.
    max_file_kb: int = setting(512, low=1, high=10240)
    max_nodes: int = setting(200, low=1, high=2000)

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_kb * 1024


#: Model files the shipped workflows use, by role; a workflow manifest refers to them as ``{models.ROLE}``.
DEFAULT_MODELS: dict[str, str] = {
    "checkpoint": "v1-5-pruned-emaonly.safetensors",
    "upscale_model": "RealESRGAN_x4plus.pth",
    "video_checkpoint": "svd_xt.safetensors",
    "wan22_model": "wan2.2_ti2v_5B_fp16.safetensors",
    "wan_text_encoder": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
    "wan22_vae": "wan2.2_vae.safetensors",
    "ltxv_checkpoint": "ltx-video-2b-v0.9.5.safetensors",
    "ltxv_text_encoder": "t5xxl_fp16.safetensors",
    "interpolation_model": "rife47.pth",
}


@dataclass(frozen=True)
class OpsSettings:
    #: The address of the health and metrics endpoint (``/healthz``, ``/metrics``); loopback unless you say so.
    http_host: str = setting("127.0.0.1", env="DISCOMFY_HTTP_HOST", nonempty=True)
    #: Its port; 0 turns the endpoint off (the Docker image sets 9464).
    http_port: int = setting(0, env="DISCOMFY_HTTP_PORT", low=0, high=65535)


@dataclass(frozen=True)
class Settings:
    discord: DiscordSettings = DiscordSettings()
    comfyui: ComfySettings = ComfySettings()
    storage: StorageSettings = StorageSettings()
    limits: LimitSettings = LimitSettings()
    permissions: PermissionSettings = PermissionSettings()
    #: Role → model file name on the ComfyUI servers; a table overrides some roles, keeps the rest, adds new ones.
    models: Mapping[str, str] = setting(
        factory=lambda: dict(DEFAULT_MODELS), nonempty=True, what="a model file name in quotes"
    )
    workflows_dir: Path = setting(Path("workflows"), env="DISCOMFY_WORKFLOWS_DIR")  # noqa: RUF009
    log_level: str = setting("INFO", env="DISCOMFY_LOG_LEVEL", choices=LOG_LEVELS)
    #: "text" (readable lines) or "json" (one JSON object a line, for a log collector); any case.
    log_format: str = setting("TEXT", env="DISCOMFY_LOG_FORMAT", choices=LOG_FORMATS)
    workflow_uploads: WorkflowUploadSettings = WorkflowUploadSettings()
    ops: OpsSettings = OpsSettings()


def _is_section(kind: Any) -> bool:
    return isinstance(kind, type) and is_dataclass(kind)


def setting_fields(cls: type[Any] = Settings, prefix: str = "") -> Iterator[tuple[str, Field[Any], Any]]:
    """Every setting below ``cls`` as (dotted name, field, annotated type); sections are walked, not listed."""
    hints = get_type_hints(cls)
    for f in fields(cls):
        kind = hints[f.name]
        if _is_section(kind):
            yield from setting_fields(kind, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f, kind


def rule_of(f: Field[Any]) -> Rule:
    rule = f.metadata.get(_RULE, Rule())
    assert isinstance(rule, Rule)
    return rule


#: Environment variable → the setting it overrides (dotted name), derived from the fields' ``env``.
ENV_OVERRIDES: dict[str, str] = {env: name for name, f, _ in setting_fields() if (env := rule_of(f).env)}


def load_settings(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    require_token: bool = True,
    warnings: list[str] | None = None,
) -> Settings:
    """Read the TOML file (if it exists), apply environment overrides, validate, return ``Settings``.

    ``path`` defaults to ``$DISCOMFY_CONFIG`` or ``./discomfy.toml``; a missing default file is fine (all
    defaults), a missing explicitly named file is a ``ConfigError``. What is worth a warning but not a refusal
    (a file holding the token that group or others can read) is appended to ``warnings``.
    """
    env = os.environ if environ is None else environ
    explicit = path is not None or CONFIG_ENV in env
    file = Path(path if path is not None else env.get(CONFIG_ENV, DEFAULT_CONFIG_FILE))
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
    settings = from_table(Settings, raw, env, file.name)
    if warnings is not None and (warning := _readable_token_file(file, raw)):
        warnings.append(warning)
    if require_token and not settings.discord.token:
        raise MissingTokenError()
    return settings


def _readable_token_file(file: Path, raw: Mapping[str, Any]) -> str | None:
    """A warning when ``file`` holds a bot token and its mode lets group or others read it."""
    discord = raw.get("discord")
    token = discord.get("token") if isinstance(discord, dict) else None
    if not isinstance(token, str) or not token.strip():
        return None
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
    except OSError:
        return None
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    who = " and ".join(w for w, bit in (("its group", stat.S_IRGRP), ("other users", stat.S_IROTH)) if mode & bit)
    return (
        f"{file} holds the bot token and {who} can read it (mode {mode:04o}): run `chmod 600 {file}`, "
        "or remove the token from the file and set DISCORD_TOKEN instead."
    )


def redact_url(url: str) -> str:
    """``url`` fit to show in a log, an error or ``/status``: ``http://user:pass@host:8188`` becomes
    ``http://[redacted]@host:8188``; a URL without credentials comes back unchanged. Pure; never raises."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/\s]*@", f"//{REDACTED}@", url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))


def url_credentials(urls: Iterable[str]) -> list[str]:
    """The user names and passwords written into ``urls`` (for the log filter's list of secrets)."""
    found = []
    for url in urls:
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        found += [unquoted for part in (parts.username, parts.password) if part for unquoted in {part, unquote(part)}]
    return found


def from_table[T](cls: type[T], table: Mapping[str, Any], environ: Mapping[str, str], source: str) -> T:
    """The dataclass ``cls`` read from a TOML ``table`` and ``environ``, or a ``ConfigError`` with every problem.

    ``source`` names the file in the report."""
    reader = _Reader(source, environ)
    result: T = reader.section(cls, table, "")
    if reader.problems:
        raise ConfigError(reader.problems)
    return result


# -- the generic reader: types from the annotations, checks from each field's Rule --

_BAD: Any = object()  # a value that was reported; the field keeps its default


def _default(f: Field[Any]) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _from_env(kind: Any, text: str) -> Any:
    """An environment string as the TOML value it stands for; what cannot be converted is left for the check."""
    if get_origin(kind) is tuple:
        return [part.strip() for part in text.split(",") if part.strip()]
    if kind is int and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if kind is float:
        try:
            return float(text)
        except ValueError:
            return text
    if kind is bool and text.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return text.lower() in ("1", "true", "yes", "on")
    return text


class _Reader:
    """Turns the raw TOML dict into ``Settings``, collecting every problem instead of stopping at the first."""

    def __init__(self, source: str, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ
        self.problems: list[str] = []

    def section(self, cls: type[Any], table: Mapping[str, Any], prefix: str) -> Any:
        """Build the dataclass ``cls`` from ``table`` (its fields' environment variables first)."""
        hints = get_type_hints(cls)
        known = [f.name for f in fields(cls)]
        for key in table:
            if key not in known:
                scope = f"[{prefix[:-1]}] knows" if prefix else "known"
                self.problems.append(
                    f"unknown setting '{prefix}{key}' in {self.source}; {scope}: {', '.join(sorted(known))}."
                )
        values: dict[str, Any] = {}
        for f in fields(cls):
            name, kind = f"{prefix}{f.name}", hints[f.name]
            if _is_section(kind):
                sub = table.get(f.name, {})
                if not isinstance(sub, dict):
                    self.problems.append(f"'{name}' must be a table: write it as a [{name}] section.")
                    sub = {}
                values[f.name] = self.section(kind, sub, f"{name}.")
                continue
            rule = rule_of(f)
            text = self.environ.get(rule.env, "").strip() if rule.env else ""
            if text:
                first = len(self.problems)
                value = self.value(name, kind, rule, _from_env(kind, text), _default(f))
                for i in range(first, len(self.problems)):
                    self.problems[i] = f"{self.problems[i].removesuffix('.')} (from the environment: {rule.env})."
            elif f.name in table:
                value = self.value(name, kind, rule, table[f.name], _default(f))
            else:
                continue
            if value is not _BAD:
                values[f.name] = value
        return cls(**values)

    def value(self, name: str, kind: Any, rule: Rule, raw: Any, default: Any = None) -> Any:
        """``raw`` checked against the type ``kind`` and ``rule``; ``_BAD`` (and a problem) if it does not fit."""
        origin = get_origin(kind)
        if origin is tuple:
            return self._tuple(name, get_args(kind)[0], rule, raw)
        if origin is Mapping or origin is dict:
            return self._mapping(name, get_args(kind)[1], rule, raw, default)
        shown = "(hidden)" if rule.secret else repr(raw)
        if kind is bool:
            return raw if isinstance(raw, bool) else self._bad(f"{name} must be true or false, not {shown}.")
        if kind is int or kind is float:
            fits = isinstance(raw, int) or (kind is float and isinstance(raw, float))
            if isinstance(raw, bool) or not fits:
                return self._bad(f"{name} must be {self._describe(kind, rule)}, not {shown}.")
            if (rule.low is not None and raw < rule.low) or (rule.high is not None and raw > rule.high):
                if rule.what:
                    return self._bad(f"{name} must be {rule.what}, not {shown}.")
                return self._bad(f"{name} is {_number(raw)}; it must be {self._bounds(rule)}.")
            return kind(raw)
        assert kind is str or kind is Path, f"{name}: no reader for {kind!r}"
        if not isinstance(raw, str) or (rule.nonempty and not raw.strip()):
            return self._bad(f"{name} must be {self._describe(kind, rule)}, not {shown}.")
        text = raw.strip()
        if rule.choices:
            text = text.upper()
            if text not in rule.choices:
                return self._bad(f"{name} '{text}' is not one of {', '.join(rule.choices)}.")
        if rule.url:
            return self._url(name, text)
        return Path(text) if kind is Path else text

    def _tuple(self, name: str, item: Any, rule: Rule, raw: Any) -> Any:
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list):
            return self._bad(f'{name} must be a list like ["...", "..."], not {raw!r}.')
        if rule.nonempty and not items:
            hint = f", or set {rule.env}" if rule.env else ""
            return self._bad(f"{name} is empty: give at least one ({self._describe(item, rule)}){hint}.")
        each = replace(rule, nonempty=False)
        out = []
        for i, value in enumerate(items):
            if item is int and isinstance(value, str) and value.strip().isdigit():
                value = int(value)  # ids are often quoted, and always are when they come from the environment
            out.append(self.value(f"{name}[{i}]", item, each, value))
        return _BAD if any(v is _BAD for v in out) else tuple(out)

    def _mapping(self, name: str, item: Any, rule: Rule, raw: Any, default: Any) -> Any:
        if not isinstance(raw, dict):
            key = name.rsplit(".", 1)[-1]
            return self._bad(f"{name} must be a table: a [{name}] section, or {key} = {{ name = value, ... }}.")
        merged = dict(default or {})
        for key, value in raw.items():
            if rule.closed and key not in merged:
                self.problems.append(
                    f"unknown setting '{name}.{key}' in {self.source}; {name} knows: {', '.join(merged)}."
                )
                continue
            checked = self.value(f"{name}.{key}", item, rule, value)
            if checked is not _BAD:
                merged[key] = checked
        return merged

    def _url(self, name: str, value: str) -> Any:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return self._bad(
                f'{name} is {redact_url(value)!r}, which is not an http(s) URL; write it like "http://127.0.0.1:8188".'
            )
        try:
            _ = parts.port
        except ValueError:
            return self._bad(f"{name} is {redact_url(value)!r}, whose port is not a number from 1 to 65535.")
        return value.rstrip("/")

    def _describe(self, kind: Any, rule: Rule) -> str:
        if rule.what:
            return rule.what
        if rule.url:
            return 'an http(s) URL in quotes, like "http://127.0.0.1:8188"'
        if kind is int or kind is float:
            bounds = self._bounds(rule)
            return ("a whole number" if kind is int else "a number") + (f" {bounds}" if bounds else "")
        return "a path in quotes" if kind is Path else "a string in quotes"

    @staticmethod
    def _bounds(rule: Rule) -> str:
        if rule.low is not None and rule.high is not None:
            return f"between {_number(rule.low)} and {_number(rule.high)}"
        if rule.low is not None:
            return f"at least {_number(rule.low)}"
        return f"at most {_number(rule.high)}" if rule.high is not None else ""

    def _bad(self, problem: str) -> Any:
        self.problems.append(problem)
        return _BAD
