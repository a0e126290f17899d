import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from discomfy.comfy.pool import NoServerError, ServerPool, ServerState, missing_models, pick_server
from discomfy.outcome import Failure
from discomfy.workflows import models_on_server
from tests.peers.comfyui.server import ComfyEmulator


def server(url: str, *, healthy: bool = True, in_flight: int = 0, queue: int = 0, models: tuple[str, ...] = ()):
    return ServerState(url, healthy=healthy, in_flight=in_flight, queue_size=queue, models=frozenset(models))


def test_pick_prefers_the_least_loaded_server() -> None:
    servers = [server("a", queue=3), server("b", queue=1)]
    assert pick_server(servers, (), capacity=2) is servers[1]


def test_pick_skips_unhealthy_and_full_servers() -> None:
    servers = [server("a", healthy=False), server("b", in_flight=2), server("c", queue=9)]
    assert pick_server(servers, (), capacity=2) is servers[2]


def test_pick_requires_every_needed_model() -> None:
    servers = [server("a", models=("sd15.safetensors",)), server("b", queue=5, models=("sd15.safetensors", "x.pth"))]
    assert pick_server(servers, {"sd15.safetensors", "x.pth"}, capacity=2) is servers[1]


def test_pick_returns_none_when_nothing_fits() -> None:
    assert pick_server([server("a", in_flight=1)], (), capacity=1) is None


def test_ties_go_to_the_first_listed_server() -> None:
    servers = [server("a"), server("b")]
    assert pick_server(servers, (), capacity=1) is servers[0]


def test_models_are_read_from_loader_choices_in_both_combo_forms() -> None:
    info = {
        "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["a.safetensors", "b.ckpt"], {}]}}},
        "UpscaleModelLoader": {"input": {"required": {"model_name": [["4x.pth"], {}]}}},
        "ImageScale": {"input": {"required": {"upscale_method": [["bilinear"], {}], "width": ["INT", {}]}}},
        "NewLoader": {"input": {"required": {"lora_name": ["COMBO", {"options": ["x.safetensors"]}]}}},
        "Broken": {"input": None},
    }
    assert models_on_server(info) == {"a.safetensors", "b.ckpt", "4x.pth", "x.safetensors"}


# -- the health loop, against the ComfyUI emulator ---------------------------------------------------------------


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the pool's state is plain data, polled
            await asyncio.sleep(0.01)


def unexpected_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "discomfy.comfy.pool" and r.levelno >= logging.ERROR]


async def test_a_health_check_that_raises_something_unexpected_is_logged_once_and_the_loop_goes_on(
    session: aiohttp.ClientSession,
    comfyui_emulator: ComfyEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Reading the model list meets an /object_info we never imagined (here: a bug of ours, on purpose).
    calls = 0
    broken = True

    def read_models(info: dict[str, Any]) -> frozenset[str]:
        nonlocal calls
        calls += 1
        if broken:
            raise KeyError("input")
        return models_on_server(info)

    monkeypatch.setattr("discomfy.comfy.pool.models_on_server", read_models)
    pool = ServerPool([comfyui_emulator.url], session, health_interval=0.05, down_interval=0.05, timeout=5.0)
    await pool.start()
    state = pool.servers[0]
    assert not state.healthy  # not knowing its models, the pool does not use it
    assert state.last_error == "health check failed: KeyError: 'input'"
    task = pool._health_task
    assert task is not None
    await eventually(lambda: calls >= 5)
    assert not task.done()
    [record] = unexpected_records(caplog)  # once, with its traceback; not once per round
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert comfyui_emulator.url in record.getMessage()

    broken = False
    await eventually(lambda: state.healthy)
    assert state.models and state.last_error == ""
    await pool.close()
    assert task.cancelled()
    assert len(unexpected_records(caplog)) == 1


async def test_a_health_round_that_fails_does_not_end_the_loop(
    session: aiohttp.ClientSession, comfyui_emulator: ComfyEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    pool = ServerPool([comfyui_emulator.url], session, health_interval=0.05, down_interval=0.05, timeout=5.0)
    await pool.start()
    check_all, rounds = pool.check_all, 0

    async def failing_then_fine() -> None:
        nonlocal rounds
        rounds += 1
        if rounds <= 3:
            raise RuntimeError(f"round {rounds} broke")
        await check_all()

    pool.check_all = failing_then_fine  # type: ignore[method-assign]
    asked = len(comfyui_emulator.requests)
    await eventually(lambda: rounds > 4 and len(comfyui_emulator.requests) > asked)
    [record] = unexpected_records(caplog)
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    task = pool._health_task
    assert task is not None and not task.done()
    await pool.close()
    assert task.cancelled() and pool._health_task is None
    assert not [r for r in caplog.records if r.levelno >= logging.CRITICAL]  # cancelled by close(): no alarm


async def test_a_server_a_job_found_down_is_asked_again_soon_not_after_the_long_interval(
    session: aiohttp.ClientSession, comfyui_emulator: ComfyEmulator
) -> None:
    pool = ServerPool([comfyui_emulator.url], session, health_interval=60, down_interval=0.05, timeout=5.0)
    await pool.start()
    await asyncio.sleep(0.1)  # the loop now waits its 60 s
    pool.mark_down(comfyui_emulator.url, "a job could not reach it")
    assert not pool.servers[0].healthy
    await eventually(lambda: pool.servers[0].healthy, timeout=2.0)
    await pool.close()


# -- a model no server has -------------------------------------------------------------------------------------


def test_missing_models_are_what_the_best_healthy_server_lacks() -> None:
    servers = [
        server("a", models=("sd15.safetensors",)),
        server("b", models=("sd15.safetensors", "x.pth")),
        server("c", healthy=False, models=("sd15.safetensors", "x.pth", "y.pth")),
    ]
    assert missing_models(servers, {"sd15.safetensors", "x.pth", "y.pth"}) == ("y.pth",)
    assert missing_models(servers, {"sd15.safetensors"}) == ()
    assert missing_models([server("a", healthy=False)], {"y.pth"}) == ()  # none up: nothing known to be missing


def test_a_no_server_error_with_missing_models_asks_for_an_admin_and_names_them() -> None:
    error = NoServerError("x", missing=("svd_xt.safetensors",))
    assert error.failure is Failure.MISSING_MODEL
    assert "svd_xt.safetensors" in error.user_message and "admin" in error.user_message
    assert error.shown_detail is not None and "svd_xt.safetensors" in error.shown_detail
    assert "try again" not in error.user_message.lower()
    plain = NoServerError("every server is down")
    assert plain.failure is Failure.UNREACHABLE and "try again" in plain.user_message.lower()


async def test_acquire_names_the_missing_model_when_servers_are_up_and_waits_when_none_is(
    session: aiohttp.ClientSession, comfyui_emulator: ComfyEmulator
) -> None:
    pool = ServerPool([comfyui_emulator.url], session, health_interval=60, timeout=5.0)
    await pool.start()
    with pytest.raises(NoServerError) as raised:
        await pool.acquire({"not-here.safetensors"})
    assert raised.value.missing == ("not-here.safetensors",)
    pool.servers[0].healthy = False
    with pytest.raises(NoServerError) as down:
        await pool.acquire({"not-here.safetensors"}, wait_for_health=0.1)
    assert down.value.missing == ()
    await pool.close()
