"""Benchmark (not a test): live progress in a busy channel, today's bot against the new one (issue 10).

Both bots run as real processes (``python run.py`` in their own tree, configured only by environment variables)
against the same emulators, one run after the other per scenario, each run with fresh emulators:

- the Discord emulator (``tests/peers/discord``, its rate-limit buckets keyed as Discord keys them) in this
  process: it drives ``/generate`` and records every request and every state of every message;
- ComfyUI emulators (``tests/peers/comfyui``, ``--servers`` of them, ``--step-duration`` per sampler step,
  previews as the bot asks for them) in one child process, so their work does not share this loop; at the end
  the child hands back its websocket log (``ws_log``) and which prompt id each job got.

Every time is ``time.monotonic()`` as an emulator recorded it. On Linux that is CLOCK_MONOTONIC, one clock for
every process of the machine, so the two emulators' times compare directly although they run in two processes.

"Today's bot" is commit ``1cb245e`` (main before issue 10), unpacked beside this tree with ``git archive`` into
``/tmp/discomfy-old-1cb245e`` (``--old-tree`` to use another checkout); "new" is the tree this file is in.

Scenarios: ``10x1`` (10 users start ``/generate`` together in one channel), ``50x1`` (50 in one channel),
``50x5`` (50 over 5 channels, 10 each). Each user is a separate member running one job (the default per-user
limits stay as they are); the prompt carries a unique label, by which the ComfyUI child finds the job's prompt id.

What is measured (per job: its interaction's original message and that message's ``history``; an *edit* is
every state after the first, i.e. after the deferral created the message):

- **event → shown**: for every ComfyUI event of the job, the time from the emulator sending it to the first
  state of the message that shows it, where
    * ``execution_start`` is shown by the first state titled Running or a later phase (Finishing, Done,
      or a failure);
    * ``progress`` with value k of n is shown by the first state that reads "step j/n" with j ≥ k in the
      Running phase, or a later phase;
    * ``execution_success`` is shown by the first state in the Finishing phase or later.
  An event never shown (the job did not finish in time) is counted, not timed.
- **start → running**: the ``execution_start`` rows of the above alone.
- **end → result**: from ``execution_success`` to the first state titled Done that carries attachments.
- **edits / job**: mean (and max) number of edits of a job's message.
- **identical**: edits whose content, embeds, components and attachments (file names and bytes) equal the
  message's previous state. Must be 0.
- **429s**: answers with status 429, by ``X-RateLimit-Scope`` (``user``, ``global``, ``shared``). Must be 0.
- **CPU / job**: the bot process's user + system CPU (``/proc/<pid>/stat``) from the first command to the last
  result plus ``SETTLE`` seconds, minus its idle rate (measured over ``--idle`` seconds after start-up) times
  that span, divided by the jobs. The table shows new/old beside the new bot's figure.
- **wall**: from the first command to the last job's final state (Done or a failure); a run that does not get
  there within ``--timeout`` (or whose bot exits) says so in this column, with how many results arrived.

    python bench/busy_channel.py                       # every scenario, both bots; about four minutes
    python bench/busy_channel.py --scenarios 10x1 --bots new --trace 7   # and job 7's timeline

Targets (issue 10), at 50 jobs in one channel: event → shown p95 ≤ 2 s, end → result p95 ≤ 300 ms,
identical edits 0, 429s 0, bot CPU per job at most half of today's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the emulators live in tests/, which is not installed

from tests.peers.discord import DiscordEmulator, InteractionRecord, StoredMessage  # noqa: E402
from tests.peers.discord.messages import MessageSnapshot  # noqa: E402
from tests.peers.discord.models import Channel  # noqa: E402

OLD_COMMIT = "1cb245e"
OLD_TREE = Path(tempfile.gettempdir()) / f"discomfy-old-{OLD_COMMIT}"
SCENARIOS: dict[str, tuple[int, int]] = {"10x1": (10, 1), "50x1": (50, 1), "50x5": (50, 5)}
SETTLE = 1.0  # seconds of CPU counted after the last result (work the bot does after it)
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The ComfyUI emulators' child: argv = servers, step_duration. Prints a JSON list of URLs; at stdin EOF prints
# one JSON object {"events": [[time, type, prompt_id, value, max], ...], "prompts": {prompt_id: label}} and exits.
COMFY_CHILD = """
import asyncio, contextlib, json, sys
from tests.peers.comfyui import ComfyEmulator
KINDS = ("execution_start", "progress", "execution_success", "execution_error", "execution_interrupted")
def label_of(graph):
    for node in (graph or {}).values():
        text = (node.get("inputs") or {}).get("text")
        if isinstance(text, str) and text.startswith("bench-"):
            return text.split()[0]
    return None
async def main():
    servers, step = int(sys.argv[1]), float(sys.argv[2])
    async with contextlib.AsyncExitStack() as stack:
        emus = [await stack.enter_async_context(ComfyEmulator(step_duration=step)) for _ in range(servers)]
        print(json.dumps([emu.url for emu in emus]), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        events, prompts = [], {}
        for emu in emus:
            for r in emu.ws_log:
                data = r.data if isinstance(r.data, dict) else {}
                if r.direction == "out" and r.type in KINDS and data.get("prompt_id"):
                    events.append([r.time, r.type, data["prompt_id"], data.get("value"), data.get("max")])
            for r in emu.requests:
                if r.method == "POST" and r.route.endswith("/prompt") and r.status == 200:
                    label = label_of((r.json or {}).get("prompt"))
                    if label and isinstance(r.response, dict) and r.response.get("prompt_id"):
                        prompts[r.response["prompt_id"]] = label
        print(json.dumps({"events": events, "prompts": prompts}), flush=True)
asyncio.run(main())
"""


class ComfyChild:
    """``servers`` ComfyUI emulators in a child process; ``records()`` stops them and returns their logs."""

    def __init__(self, servers: int, step_duration: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", COMFY_CHILD, str(servers), str(step_duration)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.urls: list[str] = json.loads(self._out.readline())

    @property
    def _out(self) -> IO[str]:
        assert self.process.stdout is not None
        return self.process.stdout

    def records(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.close()
        records: dict[str, Any] = json.loads(self._out.readline())
        self.process.wait(20)
        return records

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class BotProcess:
    """``python run.py`` of one tree, configured by environment variables only, its output in ``log``."""

    def __init__(self, tree: Path, discord: DiscordEmulator, comfy_urls: Sequence[str], data_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCOMFY_", "DISCORD_", "COMFYUI_"))}
        env |= {
            "DISCORD_TOKEN": discord.bot_token,
            "DISCORD_API_BASE": discord.api_base,
            "DISCORD_GUILD_IDS": str(discord.guild.id),
            "COMFYUI_URL": ",".join(comfy_urls),
            "DISCOMFY_DATA_DIR": str(data_dir / "data"),
            "DISCOMFY_WORKFLOWS_DIR": str(tree / "workflows"),
        }
        self.log = data_dir / "bot.log"
        with self.log.open("wb") as out:
            # cwd is an empty folder: no discomfy.toml is read; run.py's folder comes first on sys.path, so the
            # tree's own discomfy is the one imported.
            self.process = subprocess.Popen(
                [sys.executable, str(tree / "run.py")], cwd=data_dir, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def cpu(self) -> float:
        """User + system CPU seconds of the process so far (and of children it waited for)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK

    def exited(self) -> int | None:
        return self.process.poll()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


# --- what a message shows ------------------------------------------------------------------------------------

WAITING, RUNNING, FINISHING, DONE, FAILED = range(5)
STEP = re.compile(r"step (\d+)/(\d+)")


def phase_of(state: MessageSnapshot) -> int:
    title = str(state.embeds[0].get("title", "")) if state.embeds else ""
    if "Done" in title:
        return DONE
    if any(word in title for word in ("Failed", "Cancelled", "Lost")):
        return FAILED
    if "Finishing" in title:
        return FINISHING
    if "Running" in title:
        return RUNNING
    return WAITING


def step_of(state: MessageSnapshot) -> int:
    description = str(state.embeds[0].get("description", "")) if state.embeds else ""
    found = STEP.search(description)
    return int(found.group(1)) if found else 0


def shows(state: MessageSnapshot, kind: str, value: int | None) -> bool:
    phase = phase_of(state)
    if kind == "execution_start":
        return phase >= RUNNING
    if kind == "progress":
        return phase > RUNNING or (phase == RUNNING and step_of(state) >= (value or 0))
    return phase >= FINISHING  # execution_success / _error / _interrupted: the job left the Running phase


def is_result(state: MessageSnapshot) -> bool:
    return phase_of(state) == DONE and bool(state.attachment_ids)


def first_shown(history: Sequence[MessageSnapshot], kind: str, value: int | None) -> float | None:
    """When the first state showing the event appeared (``history`` is in time order)."""
    return next((s.time for s in history if shows(s, kind, value)), None)


# --- one run ------------------------------------------------------------------------------------------------


@dataclass
class Run:
    scenario: str
    bot: str
    jobs: int
    delivered: int = 0
    wall: float = 0.0
    event_shown: list[float] = field(default_factory=list)
    unshown: int = 0
    start_running: list[float] = field(default_factory=list)
    end_result: list[float] = field(default_factory=list)
    edits: list[int] = field(default_factory=list)
    identical: int = 0
    too_many: Counter[str] = field(default_factory=Counter)
    cpu_per_job: float | None = None
    problem: str = ""


def add_channels(discord: DiscordEmulator, count: int) -> list[Channel]:
    """``count`` channels: #general, then new ones added to the world before the bot connects."""
    channels = [discord.channels["general"]]
    for n in range(1, count):
        channel = Channel(discord.state.ids.next(), discord.guild.id, f"bench-{n}", 10 + n, topic="bench")
        discord.guild.channels.append(channel)
        discord.channels[channel.name] = channel
        channels.append(channel)
    return channels


def finished(discord: DiscordEmulator, interaction: InteractionRecord) -> bool:
    message = discord.original_message(interaction)
    return bool(message and message.history and phase_of(message.history[-1]) in (DONE, FAILED))


def identical_edits(discord: DiscordEmulator, message: StoredMessage) -> int:
    files = discord.state.messages.attachments

    def look(s: MessageSnapshot) -> tuple[Any, ...]:
        attached = tuple((files[i].filename, files[i].data) for i in s.attachment_ids)
        return (s.content, s.embeds, s.components, attached)

    return sum(look(a) == look(b) for a, b in zip(message.history, message.history[1:], strict=False))


async def run_one(scenario: str, bot: str, tree: Path, args: argparse.Namespace) -> Run:
    jobs, channel_count = SCENARIOS[scenario]
    result = Run(scenario, bot, jobs)
    comfy = ComfyChild(args.servers, args.step_duration)
    records: dict[str, Any] = {"events": [], "prompts": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="discomfy-busy-") as folder:
            async with DiscordEmulator() as discord:
                channels = add_channels(discord, channel_count)
                users = [discord.add_member(f"user{n:02d}") for n in range(jobs)]
                process = BotProcess(tree, discord, comfy.urls, Path(folder))
                try:
                    sent = await drive(discord, process, channels, users, scenario, bot, args, result)
                finally:
                    process.stop()
                if result.problem and process.exited() not in (None, 0):
                    print(f"--- {bot} bot, {scenario}: last lines of its log\n{process.tail()}", file=sys.stderr)
                records = await asyncio.to_thread(comfy.records)
                measure(discord, sent, records, scenario, bot, result)
                if args.trace is not None and args.trace < len(sent):
                    trace(discord, sent[args.trace], records, f"bench-{scenario}-{bot}-{args.trace:02d}")
    finally:
        comfy.kill()
    return result


async def drive(
    discord: DiscordEmulator,
    process: BotProcess,
    channels: Sequence[Channel],
    users: Sequence[Any],
    scenario: str,
    bot: str,
    args: argparse.Namespace,
    result: Run,
) -> list[InteractionRecord]:
    await discord.wait_for_command("generate", timeout=60.0)
    await asyncio.sleep(2.0)  # start-up settles (nextcord's guild_ready_timeout, the first health checks)
    idle_start, idle_cpu = time.monotonic(), process.cpu()
    await asyncio.sleep(args.idle)
    idle_rate = (process.cpu() - idle_cpu) / (time.monotonic() - idle_start)

    start, start_cpu = time.monotonic(), process.cpu()
    sent = list(
        await asyncio.gather(
            *(
                discord.send_slash_command(
                    user,
                    channels[n % len(channels)],
                    "generate",
                    {"prompt": f"bench-{scenario}-{bot}-{n:02d} a lighthouse", "steps": args.steps, "seed": n},
                )
                for n, user in enumerate(users)
            )
        )
    )
    deadline = start + args.timeout
    while not all(finished(discord, i) for i in sent):
        if process.exited() is not None:
            result.problem = f"bot exited (code {process.exited()})"
            break
        if time.monotonic() > deadline:
            result.problem = f"not finished within {args.timeout:g} s"
            break
        await asyncio.sleep(0.1)
    end = time.monotonic()
    result.wall = end - start
    if not result.problem:
        await asyncio.sleep(SETTLE)
        span = time.monotonic() - start
        result.cpu_per_job = (process.cpu() - start_cpu - idle_rate * span) / len(sent)
    return sent


def measure(
    discord: DiscordEmulator,
    sent: Sequence[InteractionRecord],
    records: dict[str, Any],
    scenario: str,
    bot: str,
    result: Run,
) -> None:
    prompt_of = {label: prompt_id for prompt_id, label in records["prompts"].items()}
    events: dict[str, list[tuple[float, str, int | None]]] = {}
    for at, kind, prompt_id, value, _ in records["events"]:
        events.setdefault(prompt_id, []).append((at, kind, value))
    for n, interaction in enumerate(sent):
        message = discord.original_message(interaction)
        if message is None:
            continue
        history = message.history
        result.edits.append(len(history) - 1)
        result.identical += identical_edits(discord, message)
        result.delivered += any(is_result(s) for s in history)
        prompt_id = prompt_of.get(f"bench-{scenario}-{bot}-{n:02d}")
        for at, kind, value in events.get(prompt_id or "", []):
            shown = first_shown(history, kind, value)
            if shown is None:
                result.unshown += 1
                continue
            # ComfyUI sends progress_state (which carries the step too) just before progress: a state may show
            # the step a hair before the progress frame went out. Counted as 0.
            latency = max(0.0, shown - at)
            result.event_shown.append(latency)
            if kind == "execution_start":
                result.start_running.append(latency)
            if kind == "execution_success":
                done = next((s.time for s in history if is_result(s)), None)
                if done is not None:
                    result.end_result.append(done - at)
    for r in discord.requests:
        if r.status == 429:
            result.too_many[getattr(r, "ratelimit_scope", None) or r.fault or "?"] += 1


def trace(discord: DiscordEmulator, interaction: InteractionRecord, records: dict[str, Any], label: str) -> None:
    """One job's ComfyUI events and message states, in seconds after its command, to stderr."""
    prompt_id = next((p for p, name in records["prompts"].items() if name == label), None)
    lines = [(at, f"comfy  {kind} {value or ''}") for at, kind, p, value, _ in records["events"] if p == prompt_id]
    message = discord.original_message(interaction)
    for state in message.history if message else []:
        title = str(state.embeds[0].get("title", "")) if state.embeds else "(no embed)"
        lines.append((state.time, f"state  {title} · step {step_of(state)} · {len(state.attachment_ids)} files"))
    print(f"--- {label}", file=sys.stderr)
    for at, text in sorted(lines):
        print(f"  {at - interaction.created:7.3f}  {text}", file=sys.stderr)


# --- the table ----------------------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # nearest rank


def spread(values: Sequence[float], scale: float, digits: int) -> str:
    if not values:
        return "—"
    return " / ".join(f"{quantile(values, q) * scale:.{digits}f}" for q in (0.5, 0.95, 1.0))


HEADER = (
    "| scenario | bot | event → shown p50 / p95 / max (s) | start → running p50 / p95 / max (s) "
    "| end → result p50 / p95 / max (ms) | edits / job (max) | identical | 429s | CPU / job (ms) | wall (s) |"
)


def table_row(run: Run, old: Run | None) -> str:
    edits = f"{sum(run.edits) / len(run.edits):.1f} ({max(run.edits)})" if run.edits else "—"
    too_many = sum(run.too_many.values())
    scopes = ", ".join(f"{k} {v}" for k, v in sorted(run.too_many.items()))
    cpu = "—" if run.cpu_per_job is None else f"{run.cpu_per_job * 1000:.0f}"
    if old is not None and old.cpu_per_job and run.cpu_per_job is not None:
        cpu += f" ({run.cpu_per_job / old.cpu_per_job:.2f}× old)"
    shown = spread(run.event_shown, 1, 2) + (f"; {run.unshown} never shown" if run.unshown else "")
    bot = f"{run.bot} ({OLD_COMMIT})" if run.bot == "old" else run.bot
    wall = f"{run.wall:.0f}" + (f"; {run.problem}, {run.delivered}/{run.jobs} results" if run.problem else "")
    return (
        f"| {run.scenario} | {bot} | {shown} | {spread(run.start_running, 1, 2)} "
        f"| {spread(run.end_result, 1000, 0)} | {edits} | {run.identical} "
        f"| {too_many}{f' ({scopes})' if scopes else ''} | {cpu} | {wall} |"
    )


def old_tree(path: Path | None) -> Path:
    """Today's bot: ``--old-tree``, or commit ``OLD_COMMIT`` unpacked (``git archive``) once into ``OLD_TREE``."""
    if path is not None:
        return path
    if not (OLD_TREE / "run.py").exists():
        unpacking = OLD_TREE.with_name(OLD_TREE.name + ".partial")
        shutil.rmtree(unpacking, ignore_errors=True)
        unpacking.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", OLD_COMMIT], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(unpacking)], input=archive.stdout, check=True)
        unpacking.rename(OLD_TREE)
    return OLD_TREE


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated: " + ", ".join(SCENARIOS))
    parser.add_argument("--bots", default="old,new", help="comma-separated: old, new")
    parser.add_argument("--old-tree", type=Path, help=f"a checkout of today's bot (default: {OLD_COMMIT} unpacked)")
    parser.add_argument("--servers", type=int, default=5, help="ComfyUI emulator servers (default 5)")
    parser.add_argument("--steps", type=int, default=20, help="sampler steps per job (default 20)")
    parser.add_argument("--step-duration", type=float, default=0.1, help="seconds per step (default 0.1)")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle CPU baseline (default 3)")
    parser.add_argument("--trace", type=int, help="print the timeline of this job (0-based) of every run")
    parser.add_argument("--timeout", type=float, default=150.0, help="seconds a run may take (default 150)")
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bots = [b.strip() for b in args.bots.split(",") if b.strip()]
    if unknown := [s for s in scenarios if s not in SCENARIOS] + [b for b in bots if b not in ("old", "new")]:
        parser.error(f"unknown: {', '.join(unknown)}")
    trees = {"new": REPO} | ({"old": old_tree(args.old_tree)} if "old" in bots else {})

    runs: list[Run] = []
    began = time.monotonic()
    for scenario in scenarios:
        for bot in bots:
            print(f"{scenario}, {bot} bot …", file=sys.stderr, flush=True)
            runs.append(await run_one(scenario, bot, trees[bot], args))
    print(
        f"\n{args.servers} ComfyUI emulators, {args.steps} steps of {args.step_duration:g} s per job, previews on; "
        f"the Discord emulator's buckets as it keys them; {time.monotonic() - began:.0f} s in all.\n"
    )
    print(HEADER)
    print("|" + " --- |" * HEADER.count(" | ") + " --- |")
    for run in runs:
        old = next((r for r in runs if r.scenario == run.scenario and r.bot == "old"), None)
        print(table_row(run, old if run.bot == "new" else None))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
