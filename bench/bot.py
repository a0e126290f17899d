"""Benchmark (not a test): the bot's own latencies, the whole bot against the Discord and ComfyUI emulators.

The real ``DiscomfyBot`` (nextcord) runs in this process with the Discord emulator, the ComfyUI emulator in a child
process (as in ``bench/engine.py``), so ComfyUI's work does not share our event loop. Every time below is
``time.monotonic()`` as recorded by an emulator: on Linux it is CLOCK_MONOTONIC, one clock for both processes.

1. **INTERACTION_CREATE → defer.** ``/generate`` commands are sent open-loop at a fixed rate (cheap jobs: one
   step, 256×256, no step delay, so the queue stays short while the bot works through them). From the Discord
   emulator's gateway log, the time the INTERACTION_CREATE frame was written to the bot's socket, to the time its
   interaction-callback handler took the bot's DEFERRED response (``InteractionRecord.responses[0].time``).
   The per-channel edit bucket is raised for this phase only, so the progress edits of that many jobs in two
   channels do not meet 429s (real Discord would refuse them; it is not what this phase measures).
2. **ComfyUI job end → final edit.** ``/generate`` at 576×576 with the emulator's ``noisy_pictures`` (a 996 kB
   PNG), 5–15 steps of 0.1 s (seeded), previews as the bot asks for them, the emulator's default edit bucket (5 per
   5 s per channel) and the default editor interval (1.5 s); one job at a time in #general, first ``results``
   jobs 3 s apart (the channel's edit bucket never runs out), then ``results // 2`` back to back. From the
   ComfyUI emulator's ``executing`` ``node: null`` frame for the job's prompt (the child prints its ws_log times
   when it stops) to the Discord emulator's record of the PATCH carrying the PNG: when it began to arrive and
   when it was read and answered. Split by the one bot-side time taken (``MessageEditor.finish`` wrapped here,
   nothing in the bot changed): the bot's pipeline up to handing the final state to the editor, then the wait
   before the request (the editor's 1.5 s interval after the last progress edit; the edit bucket), the upload.

    python bench/bot.py [commands] [results]      (defaults 200 and 16; about three and a half minutes)

Targets (issue 4): p99 ≤ 50 ms for the defer; p95 ≤ 150 ms from job end to the final edit for a 1 MB PNG.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from discomfy.app import App
from discomfy.bot.editor import MessageEditor
from discomfy.bot.render_job import RenderedMessage
from discomfy.comfy.engine import EngineOptions
from discomfy.config import ComfySettings, DiscordSettings, LimitSettings, Settings, StorageSettings

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the emulators live in tests/, which is not installed

from tests.peers.discord import (  # noqa: E402
    DiscordEmulator,
    InteractionRecord,
    NextcordRunner,
    RequestRecord,
    ResponseType,
)

EDITOR_INTERVAL = 1.5
COMMAND_RATE = 10.0  # /generate per second in phase 1
WARMUP = 5
USERS = ("alice", "bob", "carol")
CHANNELS = ("general", "renders")

# The ComfyUI emulator child: prints its URL; each stdin line is a JSON object of config overrides; at EOF it
# prints one JSON line [prompt_id, monotonic time] per terminal ``executing`` (node null) it sent, and exits.
EMULATOR = """
import asyncio, json, sys
from tests.peers.comfyui import ComfyEmulator
async def main():
    async with ComfyEmulator(step_duration=0.0) as emu:
        print(emu.url, flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            for key, value in json.loads(line).items():
                setattr(emu.config, key, value)
            print("ok", flush=True)
        for r in emu.ws_log:
            data = r.data if isinstance(r.data, dict) else {}
            if r.direction == "out" and r.type == "executing" and data.get("node") is None and data.get("prompt_id"):
                print(json.dumps([data["prompt_id"], r.time]), flush=True)
asyncio.run(main())
"""


class ComfyChild:
    """The ComfyUI emulator in its own process; ``configure`` changes its config, ``job_ends`` stops it."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", EMULATOR], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.url = self._out.readline().strip()

    @property
    def _out(self) -> IO[str]:
        assert self.process.stdout is not None
        return self.process.stdout

    def configure(self, **overrides: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(overrides) + "\n")
        self.process.stdin.flush()
        if self._out.readline().strip() != "ok":
            raise RuntimeError("the ComfyUI emulator did not take its configuration")

    def job_ends(self) -> dict[str, float]:
        """Stops the emulator; the time it sent ``executing`` ``node: null``, by prompt id."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        ends = {prompt_id: at for prompt_id, at in map(json.loads, self._out)}
        self.process.wait(10)
        return ends

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def settings_for(discord: DiscordEmulator, comfy_url: str, data_dir: Path) -> Settings:
    # Limits raised so nothing is refused: 200 commands from three users in 20 s.
    return Settings(
        discord=DiscordSettings(token=discord.bot_token, api_base=discord.api_base, guild_ids=(discord.guild.id,)),
        comfyui=ComfySettings(servers=(comfy_url,), request_timeout=10.0, max_jobs_per_server=1),
        storage=StorageSettings(data_dir=data_dir, max_output_files=10_000),
        limits=LimitSettings(commands_per_minute=100_000, max_jobs_per_user=1_000, max_jobs_total=1_000),
        workflows_dir=REPO / "workflows",
    )


async def until[T](condition: Callable[[], T | None], timeout: float, what: str) -> T:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)
    return value


def result_delivered(discord: DiscordEmulator, interaction: InteractionRecord) -> bool:
    message = discord.original_message(interaction)
    title = message.embeds[0].get("title", "") if message and message.embeds else ""
    return bool(message and "Done" in title and message.attachments)


def percentile(values: Sequence[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] * 1000


def line(name: str, values: Sequence[float], ps: Sequence[int]) -> str:
    cells = "  ".join(f"p{p} {percentile(values, p):7.1f}" for p in ps)
    return f"  {name:<52} {cells}   max {max(values) * 1000:7.1f} ms"


# --- phase 1: INTERACTION_CREATE → defer --------------------------------------------------------------------


async def defer_latencies(discord: DiscordEmulator, commands: int) -> list[float]:
    config = discord.config
    saved = dataclasses.replace(config)
    config.webhook_bucket_limit = config.channel_edit_bucket_limit = config.channel_send_bucket_limit = 100_000
    sent: list[InteractionRecord] = []
    start = time.monotonic()
    for i in range(WARMUP + commands):
        await asyncio.sleep(max(0.0, start + i / COMMAND_RATE - time.monotonic()))
        options = {"prompt": f"bench {i}", "steps": 1, "width": 256, "height": 256, "seed": i}
        sent.append(await discord.send_slash_command(USERS[i % 3], CHANNELS[i % 2], "generate", options))
    for interaction in sent:
        response = await discord.wait_for_response(interaction, timeout=10.0)
        if response.type is not ResponseType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE or interaction.refusals:
            raise RuntimeError(f"command {interaction.id} was not deferred: {response.type} {interaction.refusals}")
    frames = {
        int(r.data["id"]): r.time
        for r in discord.state.gateway_log
        if r.direction == "send" and r.event == "INTERACTION_CREATE"
    }
    latencies = []
    for interaction in sent[WARMUP:]:
        assert interaction.response is not None
        latencies.append(interaction.response.time - frames[interaction.id])
    await until(lambda: all(result_delivered(discord, i) for i in sent), 120.0, "every phase-1 result delivered")
    config.webhook_bucket_limit = saved.webhook_bucket_limit
    config.channel_edit_bucket_limit = saved.channel_edit_bucket_limit
    config.channel_send_bucket_limit = saved.channel_send_bucket_limit
    return latencies


# --- phase 2: job end → final edit ------------------------------------------------------------------------

#: When the observer handed each job's final state to its editor (``MessageEditor.finish``), by interaction token:
#: the one bot-side time this benchmark takes, to split "job end → final edit" into the bot's pipeline (result
#: fetched, stored, fitted, rendered) and the wait before the request (the editor's interval, the edit bucket).
FINISH_CALLED: dict[str, float] = {}


def record_finish_calls() -> None:
    finish = MessageEditor.finish

    async def recorded(self: MessageEditor, rendered: RenderedMessage) -> int:
        if self._target.token is not None:
            FINISH_CALLED.setdefault(self._target.token, time.monotonic())
        return await finish(self, rendered)

    MessageEditor.finish = recorded  # type: ignore[method-assign]


@dataclass(frozen=True)
class Delivery:
    """One phase-2 job in monotonic times: its ComfyUI end, the bot's call of ``finish``, its final edit."""

    job_end: float
    finish_called: float
    final: RequestRecord

    def columns(self) -> tuple[float, float, float, float, float]:
        return (
            self.final.time - self.job_end,
            self.final.end_time - self.job_end,
            self.finish_called - self.job_end,
            self.final.time - self.finish_called,
            self.final.end_time - self.final.time,
        )


COLUMNS = (
    "as is: job end → final PATCH begins to arrive",
    "as is: job end → final PATCH read and answered",
    "  bot pipeline: job end → editor.finish() called",
    "  wait: finish() → PATCH begins (interval, bucket)",
    "  upload: PATCH begins → read and answered",
)


def edits_of(discord: DiscordEmulator, interaction: InteractionRecord) -> list[RequestRecord]:
    message = discord.original_message(interaction)
    paths = {f"/channels/{interaction.channel.id}/messages/{message.id}"} if message else set()
    return [r for r in discord.requests if r.method == "PATCH" and (interaction.token in r.path or r.path in paths)]


async def run_results(discord: DiscordEmulator, results: int, pause: float, seed: int) -> list[InteractionRecord]:
    """``results`` jobs of a ~1 MB PNG, one after another in #general, ``pause`` seconds between them."""
    rng = random.Random(seed)
    sent: list[InteractionRecord] = []
    for i in range(results):
        options = {"prompt": f"noise {seed} {i}", "steps": rng.randint(5, 15), "width": 576, "height": 576}
        interaction = await discord.send_slash_command("alice", "general", "generate", options | {"seed": i})
        await until(lambda: result_delivered(discord, interaction), 60.0, f"result {i}")  # noqa: B023
        sent.append(interaction)
        await asyncio.sleep(pause)
    return sent


def deliveries(
    discord: DiscordEmulator,
    prompt_of: Mapping[str, str | None],
    ends: dict[str, float],
    sent: Sequence[InteractionRecord],
) -> list[Delivery]:
    out = []
    for interaction in sent:
        edits = edits_of(discord, interaction)
        final = next(r for r in edits if r.status == 200 and any(f.filename.endswith(".png") for f in r.files))
        if final.files[0].size < 900_000:
            raise RuntimeError(f"the result PNG is {final.files[0].size} bytes, not ~1 MB")
        prompt_id = prompt_of[interaction.token]
        assert prompt_id is not None
        out.append(Delivery(ends[prompt_id], FINISH_CALLED[interaction.token], final))
    return out


def report(title: str, rows: Sequence[Delivery]) -> None:
    print(title)
    for n, name in enumerate(COLUMNS):
        print(line(name, [row.columns()[n] for row in rows], (50, 95)))


async def main() -> None:
    commands = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    results = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    logging.basicConfig(level=logging.WARNING)
    record_finish_calls()
    comfy = ComfyChild()
    try:
        with tempfile.TemporaryDirectory(prefix="discomfy-bench-") as data:
            async with DiscordEmulator() as discord, NextcordRunner(discord) as runner:
                settings = settings_for(discord, comfy.url, Path(data))
                app = App(settings, engine_options=EngineOptions(), editor_interval=EDITOR_INTERVAL)
                bot = app.bot
                await runner(bot, timeout=30.0)
                defers = await defer_latencies(discord, commands)
                await asyncio.to_thread(comfy.configure, noisy_pictures=True, step_duration=0.1)
                await asyncio.sleep(5.0)  # the channel's edit bucket (5 per 5 s) starts empty
                spaced = await run_results(discord, results, 3.0, seed=1)
                back_to_back = await run_results(discord, max(2, results // 2), 0.0, seed=2)
                assert app.stack is not None
                jobs = await app.stack.store.by_owner(discord.users["alice"].id, active_only=False)
                prompt_of = {job.interaction.token: job.prompt_id for job in jobs if job.interaction is not None}
                await runner.close(bot)
        ends = await asyncio.to_thread(comfy.job_ends)
    finally:
        comfy.kill()
    spaced_rows = deliveries(discord, prompt_of, ends, spaced)
    back_to_back_rows = deliveries(discord, prompt_of, ends, back_to_back)
    too_many = [r for r in discord.requests if r.status == 429]

    print(f"INTERACTION_CREATE → defer callback, {commands} /generate at {COMMAND_RATE:g}/s (target p99 ≤ 50 ms)")
    print(line("frame written → callback handled", defers, (50, 95, 99)))
    print("ComfyUI job end → final edit with a 996 kB PNG, 5–15 steps of 0.1 s (target p95 ≤ 150 ms)")
    report(f" {len(spaced_rows)} jobs, 3 s apart (the channel's edit bucket never runs out)", spaced_rows)
    report(f" {len(back_to_back_rows)} jobs back to back in one channel", back_to_back_rows)
    print(f"  429 answers from the emulator: {len(too_many)}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
