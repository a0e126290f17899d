"""``python run.py --check``: the doctor. Finds out in seconds what would stop the bot, without starting it.

How it works: ``examine(settings)`` runs the checks and returns ``Check``s, one line each; ``report`` draws them
and ``run`` prints them and gives the exit status. In order:

- the configuration (``load_settings`` already passed; its warnings become lines), and whether this user could
  use the data directory (nothing is created);
- Discord, over REST only (no gateway, so no session is opened and nothing shows online): ``GET /users/@me``
  (the token; the bot's name), ``GET /users/@me/guilds`` (its servers, and those of ``discord.guild_ids`` it is
  not in), then, for each channel of ``permissions.allowed_channels``, ``GET /channels/{id}`` (its overwrites),
  ``/guilds/{id}``, ``/guilds/{id}/roles`` and ``/guilds/{id}/members/{bot}``, from which ``bot/permissions.py``
  computes the bot's permissions there as Discord does. With no channels configured, the base permissions of
  each server (``discord.guild_ids``, else all) are checked and the line says the overwrites were not;
- each ComfyUI server, all at once: ``/system_stats`` (version, devices, free VRAM), ``/queue``, ``/object_info``;
- each workflow against each server that answered (``workflows.validate``: missing node types, model files,
  values), then each kind's default workflow with its fallbacks: can any server run one of them?

What blocks (``✗``, exit status 1): a data directory that cannot be used, a refused token or an unreachable Discord;
a server in ``discord.guild_ids`` the bot is not in; a configured channel that does not exist, that the bot cannot
see or where it lacks a permission in ``REQUIRED``; no ComfyUI server answering; no workflow, or no image workflow,
loaded; an image workflow (with its fallbacks) that no server can run. What is a warning (``!``, exit status 0):
configuration warnings, a data directory others may read, a server down while another answers, one workflow that
cannot run on one server, a workflow file that could not be loaded (its kind's default line says whether that
matters), permissions not checked, no upscale or video workflow (or none a server can run: those buttons and
/animate answer with what is missing), base permissions short of ``REQUIRED`` when only the servers (not channels)
were checked (an overwrite may grant them), the bot in no server yet. Everything else is ``✓``.

Every request has a timeout (``request_timeout``, at most ``comfyui.request_timeout``), is tried once, and the one
aiohttp session is closed before ``examine`` returns, whatever happened.

Never: print the bot token (``DiscordRest`` holds it; errors are reported by status, and URLs through
``redact_url``), open the gateway, send anything that changes state on Discord or ComfyUI, or hang on a dead host.
"""

from __future__ import annotations

import asyncio
import os
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import aiohttp

from discomfy.bot import permissions
from discomfy.bot.ratelimits import RouteKey
from discomfy.bot.rest import DiscordHTTPError, DiscordRest, Request
from discomfy.comfy.http import ComfyHTTP, ComfyUnreachableError
from discomfy.comfy.types import QueueState, parse_queue, parse_system_stats
from discomfy.config import Settings, redact_url, url_credentials
from discomfy.errors import ComfyError
from discomfy.logs import redact
from discomfy.workflows import Kind, Registry, load_workflows, validate

#: Seconds one request may take at most (``comfyui.request_timeout`` when that is shorter).
DEFAULT_TIMEOUT = 10.0
#: How many of a workflow's problems one line names.
PROBLEMS_SHOWN = 2
#: How many of the bot's servers the servers line names.
GUILDS_SHOWN = 10
#: The longest subject, text or fix of a line (characters).
LINE_PART = 700
GIB = 1024**3

#: What uses a kind's default workflow, for the lines about them.
USED_BY = {Kind.IMAGE: "/generate", Kind.UPSCALE: "the Upscale button", Kind.VIDEO: "/animate and Animate"}


class Mark(StrEnum):
    OK = "✓"
    WARN = "!"
    FAIL = "✗"


@dataclass(frozen=True)
class Check:
    mark: Mark
    subject: str
    text: str
    #: What to do about it (empty for ✓).
    fix: str = ""

    def line(self) -> str:
        """One terminal line. Names from Discord and ComfyUI are untrusted: control characters (escape sequences,
        newlines) are shown as ``?`` and each part is cut at ``LINE_PART`` characters."""
        parts = [_printable(self.subject), _printable(self.text), _printable(self.fix)]
        return f"{self.mark} {parts[0]}: {parts[1]}" + (f" — {parts[2]}" if parts[2] else "")


def _printable(text: str) -> str:
    shown = "".join("?" if unicodedata.category(c).startswith("C") else c for c in text)
    return shown if len(shown) <= LINE_PART else shown[: LINE_PART - 1] + "…"


def report(checks: Sequence[Check]) -> str:
    """The lines, then one summary line."""
    failed = sum(c.mark is Mark.FAIL for c in checks)
    warned = sum(c.mark is Mark.WARN for c in checks)
    summary = f"{failed} problem(s) would stop the bot; fix the ✗ lines above" if failed else "the bot can start"
    if warned:
        summary += f" ({warned} warning(s))"
    return "\n".join([*(c.line() for c in checks), summary + "."])


def exit_status(checks: Sequence[Check]) -> int:
    return 1 if any(c.mark is Mark.FAIL for c in checks) else 0


def run(settings: Settings, warnings: Sequence[str] = (), out: IO[str] = sys.stdout) -> int:
    """Run every check, print the report, return the exit status (0: the bot can start)."""
    checks = asyncio.run(examine(settings, warnings))
    print(report(checks), file=out)
    return exit_status(checks)


async def examine(
    settings: Settings, warnings: Sequence[str] = (), *, request_timeout: float = DEFAULT_TIMEOUT
) -> list[Check]:
    """Every check, in the order of the module docstring; each request gives up after ``request_timeout``."""
    timeout = min(request_timeout, settings.comfyui.request_timeout)
    checks = [
        Check(
            Mark.OK,
            "configuration",
            f"read; {len(settings.comfyui.servers)} ComfyUI server(s), data in {settings.storage.data_dir}",
        )
    ]
    checks += [Check(Mark.WARN, "configuration", warning) for warning in warnings]
    checks.append(check_data_dir(settings.storage.data_dir))
    async with aiohttp.ClientSession() as session:
        discord = DiscordDoctor(settings, session, timeout)
        servers = [ServerDoctor(url, session, timeout, settings) for url in settings.comfyui.servers]
        await asyncio.gather(discord.examine(), *(server.examine() for server in servers))
    checks += discord.checks
    nobody = not any(server.answered for server in servers)
    for server in servers:
        if server.check is not None:
            checks.append(replace(server.check, mark=Mark.FAIL) if nobody else server.check)
    if nobody:
        checks.append(
            Check(
                Mark.FAIL,
                "ComfyUI",
                "no server answered, so no job can run (and the workflows were not checked)",
                "start ComfyUI, or point comfyui.servers / COMFYUI_URL at a running one",
            )
        )
    checks += check_workflows(settings, servers)
    return checks


def check_data_dir(path: Path) -> Check:
    """Whether the bot (running as this user) can use the data directory; nothing is created or written."""
    subject = f"data directory {path}"
    fix = "point DISCOMFY_DATA_DIR (storage.data_dir) elsewhere, or fix its owner"
    if path.exists():
        if not path.is_dir():
            return Check(Mark.FAIL, subject, "is not a directory", fix)
        if not os.access(path, os.W_OK | os.X_OK):
            return Check(Mark.FAIL, subject, f"this user (uid {os.getuid()}) cannot write in it", fix)
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            return Check(Mark.WARN, subject, f"other users may read it (mode {mode:04o})", f"chmod 700 {path}")
        return Check(Mark.OK, subject, "writable, private")
    parent = next((p for p in path.absolute().parents if p.exists()), Path("/"))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return Check(Mark.FAIL, subject, f"does not exist and cannot be created in {parent}", fix)
    return Check(Mark.OK, subject, "does not exist yet; created at the first start")


# Discord ----------------------------------------------------------------------------------------------------


@dataclass
class _Guild:
    id: int
    name: str
    owner_id: int
    role_permissions: dict[int, int]
    member_roles: tuple[int, ...]


class DiscordDoctor:
    """The Discord checks, in order; each failure that makes the next ones meaningless stops them."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession, timeout: float) -> None:
        self.settings = settings
        self.timeout = timeout
        self.rest = DiscordRest(session, base=settings.discord.api_base, token=settings.discord.token)
        self.checks: list[Check] = []
        self._guilds: dict[int, _Guild] = {}

    async def get(self, template: str, **params: int) -> Any:
        key = RouteKey(f"GET {template}", ":".join(str(v) for v in params.values()), True)
        async with asyncio.timeout(self.timeout):
            return await self.rest.send(Request("GET", template, params, key, {}))

    async def examine(self) -> None:
        api = redact_url(self.settings.discord.api_base)
        try:
            me = await self.get("/users/@me")
            bot_id, name = int(me["id"]), str(me.get("username") or "?")
        except (DiscordHTTPError, TimeoutError) as exc:
            self.checks.append(_refused("Discord token", exc, api))
            return
        except (KeyError, TypeError, ValueError):
            self.checks.append(Check(Mark.FAIL, "Discord token", f"{api} answered /users/@me with no user"))
            return
        self.checks.append(Check(Mark.OK, "Discord token", f"logged in as {name} (id {bot_id})"))
        try:
            await self._examine_places(bot_id)
        except (DiscordHTTPError, TimeoutError) as exc:
            self.checks.append(_refused("Discord", exc, api))
        except (AttributeError, KeyError, TypeError, ValueError):  # an answer without the fields Discord documents
            self.checks.append(Check(Mark.FAIL, "Discord", f"{api} answered with something unexpected", "try again"))

    async def _examine_places(self, bot_id: int) -> None:
        raw = await self.get("/users/@me/guilds")
        listed = raw if isinstance(raw, list) else []
        guilds = {int(g["id"]): g for g in listed if isinstance(g, dict) and str(g.get("id", "")).isdigit()}
        invite = permissions.invite_url(bot_id)
        if guilds:
            names = ", ".join(f"{str(g.get('name'))[:100]} ({gid})" for gid, g in list(guilds.items())[:GUILDS_SHOWN])
            more = f" and {len(guilds) - GUILDS_SHOWN} more" if len(guilds) > GUILDS_SHOWN else ""
            self.checks.append(Check(Mark.OK, "Discord servers", f"the bot is in {len(guilds)}: {names}{more}"))
        else:
            nowhere = Check(Mark.WARN, "Discord servers", "the bot is in no server yet", f"invite it: {invite}")
            self.checks.append(nowhere)
        for guild_id in self.settings.discord.guild_ids:
            if guild_id not in guilds:
                self.checks.append(
                    Check(
                        Mark.FAIL,
                        "Discord servers",
                        f"discord.guild_ids names {guild_id}, but the bot is not in that server "
                        "(its commands could not be registered there)",
                        f"invite it: {invite} — or remove the id",
                    )
                )
        if self.settings.permissions.allowed_channels:
            for channel_id in self.settings.permissions.allowed_channels:
                await self._examine_channel(channel_id, bot_id)
            return
        wanted = self.settings.discord.guild_ids or tuple(guilds)
        for guild_id in wanted:
            if guild_id in guilds:
                self._examine_base(guilds[guild_id])
        self.checks.append(
            Check(
                Mark.WARN,
                "channel permissions",
                "not checked in channels (their overwrites can take permissions away): "
                "permissions.allowed_channels is empty",
                "list the channels the bot works in to have them checked",
            )
        )

    def _examine_base(self, guild: Mapping[str, Any]) -> None:
        try:
            value = int(guild.get("permissions") or 0)
        except (TypeError, ValueError):
            value = 0
        lacking = permissions.missing(value)
        where = f"server {guild.get('name')} ({guild.get('id')})"
        if lacking:
            self.checks.append(
                Check(
                    Mark.WARN,
                    "permissions",
                    f"in {where} the bot's roles lack {', '.join(lacking)} (a channel overwrite may still allow them)",
                    "Server Settings → Roles → the bot's role: allow them",
                )
            )
        else:
            self.checks.append(Check(Mark.OK, "permissions", f"in {where}: {', '.join(permissions.REQUIRED.values())}"))

    async def _examine_channel(self, channel_id: int, bot_id: int) -> None:
        subject = f"channel {channel_id}"
        try:
            channel = await self.get("/channels/{channel_id}", channel_id=channel_id)
        except DiscordHTTPError as exc:
            if exc.status == 404:
                text = "Discord knows no such channel"
                fix = "check permissions.allowed_channels (right-click the channel → Copy ID)"
            elif exc.status == 403:
                text = "the bot cannot see it (Missing Access)"
                fix = "allow View Channel for the bot's role in the channel's settings → Permissions"
            else:
                raise
            self.checks.append(Check(Mark.FAIL, subject, text, fix))
            return
        guild_id = channel.get("guild_id") if isinstance(channel, dict) else None
        if not str(guild_id or "").isdigit():
            self.checks.append(Check(Mark.FAIL, subject, "not a server channel", "list server text channels only"))
            return
        subject = f"channel #{channel.get('name')} ({channel_id})"
        guild = await self._guild(int(str(guild_id)), bot_id)
        base = permissions.base_permissions(
            guild_id=guild.id,
            owner_id=guild.owner_id,
            user_id=bot_id,
            role_permissions=guild.role_permissions,
            member_roles=guild.member_roles,
        )
        value = permissions.channel_permissions(
            base,
            permissions.parse_overwrites(channel.get("permission_overwrites")),
            guild_id=guild.id,
            user_id=bot_id,
            member_roles=guild.member_roles,
        )
        lacking = permissions.missing(value)
        if lacking:
            self.checks.append(
                Check(
                    Mark.FAIL,
                    subject,
                    f"the bot lacks {', '.join(lacking)} there",
                    "in the channel's settings → Permissions, allow them for the bot's role",
                )
            )
        else:
            granted = ", ".join(permissions.REQUIRED.values())
            self.checks.append(Check(Mark.OK, subject, f"in {guild.name} the bot has {granted}"))

    async def _guild(self, guild_id: int, bot_id: int) -> _Guild:
        if guild_id not in self._guilds:
            guild = await self.get("/guilds/{guild_id}", guild_id=guild_id)
            roles = await self.get("/guilds/{guild_id}/roles", guild_id=guild_id)
            member = await self.get("/guilds/{guild_id}/members/{user_id}", guild_id=guild_id, user_id=bot_id)
            self._guilds[guild_id] = _Guild(
                id=guild_id,
                name=str(guild.get("name") or guild_id),
                owner_id=int(guild.get("owner_id") or 0),
                role_permissions={int(r["id"]): int(r.get("permissions") or 0) for r in roles if isinstance(r, dict)},
                member_roles=tuple(int(r) for r in member.get("roles") or ()),
            )
        return self._guilds[guild_id]


def _refused(subject: str, exc: DiscordHTTPError | TimeoutError, api: str) -> Check:
    if isinstance(exc, TimeoutError) or exc.status == 0:
        fix = "check the network (and discord.api_base)"
        return Check(Mark.FAIL, subject, f"Discord's API at {api} could not be reached", fix)
    if exc.status == 401:
        return Check(
            Mark.FAIL,
            subject,
            "Discord refused the token (401 Unauthorized)",
            "copy the bot's token again (Developer Portal → your application → Bot → Reset Token) into DISCORD_TOKEN",
        )
    if exc.status == 429:
        return Check(Mark.FAIL, subject, "Discord is rate-limiting this bot (429)", "wait a minute and check again")
    return Check(Mark.FAIL, subject, f"Discord answered {exc.status} (code {exc.code})", "check again in a minute")


# ComfyUI ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """One entry of ``/system_stats``'s ``devices``: name, and VRAM in bytes (``None`` when not reported)."""

    name: str
    vram_total: int | None
    vram_free: int | None


def parse_devices(raw: Any) -> tuple[Device, ...]:
    devices = raw.get("devices") if isinstance(raw, dict) else None
    found = []
    for item in devices if isinstance(devices, list) else []:
        if isinstance(item, dict):
            total, free = item.get("vram_total"), item.get("vram_free")
            found.append(
                Device(
                    str(item.get("name") or item.get("type") or "?")[:80],
                    total if isinstance(total, int) and not isinstance(total, bool) else None,
                    free if isinstance(free, int) and not isinstance(free, bool) else None,
                )
            )
    return tuple(found)


def _describe_device(device: Device) -> str:
    if device.vram_free is None or device.vram_total is None:
        return device.name
    return f"{device.name} ({device.vram_free / GIB:.1f} GiB free of {device.vram_total / GIB:.1f} GiB)"


@dataclass
class ServerDoctor:
    url: str
    session: aiohttp.ClientSession
    timeout: float
    settings: Settings
    check: Check | None = None
    answered: bool = False
    object_info: dict[str, Any] | None = None
    secrets: list[str] = field(default_factory=list)

    @property
    def shown(self) -> str:
        return redact_url(self.url)

    async def examine(self) -> None:
        self.secrets = url_credentials([self.url])
        http = ComfyHTTP(self.url, self.session, timeout=self.timeout, attempts=1)
        subject = f"ComfyUI {self.shown}"
        try:
            raw = await http.get_json("/system_stats")
            stats = parse_system_stats(raw)
            queue: QueueState = parse_queue(await http.get_json("/queue"))
        except ComfyError as exc:
            # A warning while another server answers; ``examine`` makes it a failure when none does.
            self.check = Check(
                Mark.WARN, subject, f"does not answer ({self._why(exc)})", "start it, or fix comfyui.servers"
            )
            return
        self.answered = True
        devices = ", ".join(_describe_device(d) for d in parse_devices(raw)) or "no device reported"
        text = (
            f"version {stats.comfyui_version}, queue {len(queue.running)} running / {len(queue.pending)} waiting, "
            f"{devices}"
        )
        try:
            self.object_info = await http.object_info()
        except ComfyError as exc:
            self.check = Check(
                Mark.WARN, subject, f"{text}; but /object_info failed ({self._why(exc)})", "check its log"
            )
            return
        self.check = Check(Mark.OK, subject, text)

    def _why(self, exc: ComfyError) -> str:
        """The reason in a few words; never the URL's credentials."""
        cause = exc.__cause__
        if isinstance(cause, TimeoutError):
            return f"no answer within {self.timeout:g} s"
        if isinstance(cause, aiohttp.ClientConnectorDNSError):
            return "its host name does not resolve"
        if isinstance(exc, ComfyUnreachableError):
            number = getattr(getattr(cause, "os_error", None), "errno", None)
            return f"cannot connect: {os.strerror(number).lower() if isinstance(number, int) else 'no connection'}"
        return redact(str(exc), self.secrets).replace(self.url, self.shown)[:300]


# Workflows --------------------------------------------------------------------------------------------------


def check_workflows(settings: Settings, servers: Sequence[ServerDoctor]) -> list[Check]:
    registry = load_workflows(settings.workflows_dir, settings.models, uploads=settings.storage.uploaded_workflows_dir)
    checks = [Check(Mark.WARN, "workflows", problem) for problem in registry.problems]
    if not registry.names():
        fix = f"put the shipped workflows/ folder at {settings.workflows_dir} (or set workflows_dir)"
        return [*checks, Check(Mark.FAIL, "workflows", "none loaded, so the bot has nothing to run", fix)]
    infos = [(s.shown, s.object_info) for s in servers if s.object_info is not None]
    if not infos:
        return checks
    runs_on: dict[str, int] = {}
    for name in registry.names():
        workflow = registry.workflows[name]
        for shown, info in infos:
            problems = validate(workflow, info, registry.models)
            subject = f"workflow {name} on {shown}"
            if problems:
                extra = len(problems) - PROBLEMS_SHOWN
                more = f" (+{extra} more, all in the bot's log at start)" if extra > 0 else ""
                said = [p.removeprefix(f"workflow '{name}': ").rstrip(".") for p in problems[:PROBLEMS_SHOWN]]
                text = "cannot run: " + "; ".join(said) + more
                checks.append(Check(Mark.WARN, subject, text, _fallback_words(registry, name)))
            else:
                runs_on[name] = runs_on.get(name, 0) + 1
                checks.append(Check(Mark.OK, subject, "can run"))
    for kind in Kind:
        default = registry.default(kind)
        if default is None:
            # /generate is the bot's reason to be; without an upscale or video workflow those buttons are not shown.
            mark = Mark.FAIL if kind is Kind.IMAGE else Mark.WARN
            article = "a" if kind is Kind.VIDEO else "an"
            fix = f"add {article} {kind} workflow to {settings.workflows_dir} (see workflows/README.md)"
            checks.append(Check(mark, USED_BY[kind], f"no {kind} workflow is loaded", fix))
            continue
        chain = registry.with_fallbacks(default.name)
        runnable = [w.name for w in chain if runs_on.get(w.name)]
        subject = USED_BY[kind]
        if runnable:
            where = ", ".join(f"{n} on {runs_on[n]} of {len(infos)} server(s)" for n in runnable)
            checks.append(Check(Mark.OK, subject, f"{default.name} (or its fallbacks) can run: {where}"))
        else:
            # Without a runnable image workflow the bot has nothing to do; without an upscale or video one, its
            # buttons and /animate answer with the missing files, and the rest works.
            names = " → ".join(w.name for w in chain)
            fix = f"install the nodes and model files named above on a server, or remove {default.name}.json"
            if kind is not Kind.IMAGE:
                fix += f" (until then, {subject}: a message naming what is missing)"
            checks.append(
                Check(Mark.FAIL if kind is Kind.IMAGE else Mark.WARN, subject, f"no server can run {names}", fix)
            )
    return checks


def _fallback_words(registry: Registry, name: str) -> str:
    chain = registry.with_fallbacks(name)
    if len(chain) > 1:
        return "the bot uses its fallback " + " → ".join(w.name for w in chain[1:]) + " there"
    return "install what is named on that server (models go in ComfyUI's models/ folders)"
