"""Gateway faults with the real nextcord client: drops and op 7 lead to RESUME, op 9 to RESUME or IDENTIFY."""

from __future__ import annotations

import nextcord
import pytest

from tests.peers.discord import DiscordEmulator, GatewayRecord, NextcordRunner

IDENTIFY, RESUME = 2, 6


def received(op: int) -> object:
    return lambda record: record.direction == "recv" and record.op == op


def dispatched(event: str) -> object:
    return lambda record: record.direction == "send" and record.event == event


def ops_since(emu: DiscordEmulator, mark: int) -> list[int]:
    return [r.op for r in emu.gateway_log[mark:] if r.direction == "recv" and r.op in (IDENTIFY, RESUME)]


class QuickClient(nextcord.Client):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """nextcord waits 5 s before every re-IDENTIFY (identify concurrency); a single test bot need not."""


@pytest.fixture
async def pinged(discord_emulator: DiscordEmulator, run_nextcord: NextcordRunner) -> DiscordEmulator:
    """A running client whose /ping answers "pong"."""
    emu = discord_emulator
    intents = nextcord.Intents.none()
    intents.guilds = True
    client = QuickClient(intents=intents, default_guild_ids=[emu.guild.id])

    @client.slash_command(description="Ping")
    async def ping(interaction: nextcord.Interaction) -> None:
        await interaction.response.send_message("pong")

    await run_nextcord(client)
    return emu


async def assert_ping_answered(emu: DiscordEmulator) -> None:
    interaction = await emu.send_slash_command("alice", "general", "ping")
    await emu.wait_for_response(interaction)
    message = emu.original_message(interaction)
    assert message is not None and message.content == "pong"


async def wait_for(emu: DiscordEmulator, predicate: object, mark: int) -> GatewayRecord:
    return await emu.wait_for_gateway(predicate, since=mark)  # type: ignore[arg-type]


async def test_abrupt_drop_is_resumed_and_the_next_interaction_arrives(pinged: DiscordEmulator) -> None:
    emu = pinged
    mark = len(emu.gateway_log)

    await emu.faults.drop_gateway()

    await wait_for(emu, dispatched("RESUMED"), mark)
    assert ops_since(emu, mark) == [RESUME]
    await assert_ping_answered(emu)


async def test_resumable_close_code_is_resumed(pinged: DiscordEmulator) -> None:
    emu = pinged
    mark = len(emu.gateway_log)

    await emu.faults.drop_gateway(code=4000)

    await wait_for(emu, dispatched("RESUMED"), mark)
    assert ops_since(emu, mark) == [RESUME]
    await assert_ping_answered(emu)


async def test_reconnect_request_is_resumed_on_the_resume_url(pinged: DiscordEmulator) -> None:
    emu = pinged
    mark = len(emu.gateway_log)

    await emu.faults.request_reconnect()

    resume = await wait_for(emu, received(RESUME), mark)
    await wait_for(emu, dispatched("RESUMED"), mark)
    assert ops_since(emu, mark) == [RESUME]
    assert resume.data["session_id"] == emu.gateway.current.id  # type: ignore[union-attr]
    await assert_ping_answered(emu)


async def test_interaction_sent_while_disconnected_is_replayed_on_resume(pinged: DiscordEmulator) -> None:
    emu = pinged
    mark = len(emu.gateway_log)
    await emu.faults.drop_gateway()
    await emu.wait_for(lambda: not emu.gateway.connected, description="the drop")

    interaction = await emu.send_slash_command("bob", "general", "ping")

    await emu.wait_for_response(interaction)
    replayed = [r for r in emu.gateway_log[mark:] if r.event == "INTERACTION_CREATE"]
    assert len(replayed) == 1 and replayed[0].seq is not None


async def test_invalid_session_not_resumable_makes_the_client_identify_again(pinged: DiscordEmulator) -> None:
    emu = pinged
    mark = len(emu.gateway_log)

    await emu.faults.invalidate_session(resumable=False)

    await wait_for(emu, dispatched("READY"), mark)
    assert ops_since(emu, mark) == [IDENTIFY]
    await assert_ping_answered(emu)


async def test_invalid_session_resumable_is_resumed(pinged: DiscordEmulator) -> None:
    emu = pinged
    mark = len(emu.gateway_log)

    await emu.faults.invalidate_session(resumable=True)

    await wait_for(emu, dispatched("RESUMED"), mark)
    assert ops_since(emu, mark) == [RESUME]
    await assert_ping_answered(emu)


async def test_sequence_numbers_keep_increasing_across_a_resume(pinged: DiscordEmulator) -> None:
    emu = pinged
    mark = len(emu.gateway_log)

    await emu.faults.request_reconnect()

    resume = await wait_for(emu, received(RESUME), mark)
    resumed = await wait_for(emu, dispatched("RESUMED"), mark)
    await assert_ping_answered(emu)
    assert resumed.seq == resume.data["seq"] + 1
    seqs = [r.seq for r in emu.gateway_log if r.direction == "send" and r.op == 0]
    assert seqs == list(range(1, len(seqs) + 1))
