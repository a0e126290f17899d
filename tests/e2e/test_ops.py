"""The health and metrics endpoint of the whole bot: real nextcord against the Discord emulator, the ComfyUI
emulator behind, and plain HTTP requests to ``/healthz`` and ``/metrics`` as a load balancer or Prometheus
would make them."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from discomfy.app import App
from discomfy.comfy.engine import EngineOptions
from discomfy.config import OpsSettings
from tests.e2e.studio import E2E_STREAM, Studio
from tests.ops_support import dashboard_metric_names

pytestmark = pytest.mark.timeout(90)

#: The pool's health checks, every 0.2 s here (15 s in production) so a server going down shows soon.
HEALTH_INTERVAL = 0.2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_with_endpoint(studio: Studio, port: int | None = None) -> App:
    """The studio's bot with the endpoint on (on a free loopback port unless ``port`` says otherwise)."""
    studio.settings = replace(studio.settings, ops=OpsSettings(http_port=port or free_port()))
    app = App(
        studio.settings,
        engine_options=EngineOptions(stream=E2E_STREAM, server_wait=1.5),
        editor_interval=studio.editor_interval,
        health_interval=HEALTH_INTERVAL,
    )
    studio.app = app
    studio.bots.append(app.bot)
    await studio.runner(app.bot, timeout=20.0)
    return app


def url(studio: Studio, path: str) -> str:
    return f"http://127.0.0.1:{studio.settings.ops.http_port}{path}"


async def get(studio: Studio, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url(studio, path)) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def health(studio: Studio) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url(studio, "/healthz")) as response:
        return response.status, await response.json()


async def scrape(studio: Studio) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``/metrics`` as {(sample name, labels): value}."""
    status, kind, text = await get(studio, "/metrics")
    assert status == 200 and kind.startswith("text/plain"), (status, kind)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def generate(studio: Studio, user: str = "alice", **options: object) -> Any:
    interaction = await studio.discord.send_slash_command(
        user, "general", "generate", {"prompt": "a fox", "steps": 6, "width": 256, "height": 256, **options}
    )
    await studio.result(interaction)
    return interaction


async def scrape_when_delivered(studio: Studio, jobs: int = 1) -> dict[Any, float]:
    """A scrape once ``jobs`` rows are ``delivered`` (the row moves after Discord answered the final edit, so a
    scrape right after the result shows on Discord may still see it ``delivering``)."""

    async def delivered() -> dict[Any, float] | None:
        samples = await scrape(studio)
        return samples if value(samples, "discomfy_jobs", state="delivered", workflow="txt2img") == jobs else None

    return await until_async(studio, delivered, f"{jobs} job(s) counted as delivered")


async def test_healthz_turns_503_when_comfyui_goes_down_and_200_when_it_comes_back(studio: Studio) -> None:
    await start_with_endpoint(studio)

    async def status_is(code: int) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            status, body = await health(studio)
            return body if status == code else None

        return await until_async(studio, check, f"/healthz answering {code}")

    assert await status_is(200) == {"status": "ok"}
    await studio.comfy.go_down()
    body = await status_is(503)
    assert body == {"status": "unhealthy", "problems": ["no ComfyUI server answers (of 1 configured)"]}
    await studio.comfy.come_up()
    assert await status_is(200) == {"status": "ok"}


async def until_async(studio: Studio, check: Any, what: str, timeout: float = 20.0) -> Any:  # noqa: ASYNC109
    """``studio.until`` for an async check (each round is a real HTTP request)."""
    found: list[Any] = []

    async def poll() -> None:
        while not found:
            result = await check()
            if result is not None:
                found.append(result)
                return
            await asyncio.sleep(0.05)

    async with asyncio.timeout(timeout):
        await poll()
    return found[0]


async def test_metrics_count_a_job_by_state_and_workflow_with_its_durations_edits_and_files(studio: Studio) -> None:
    await start_with_endpoint(studio)
    before = await scrape(studio)
    assert value(before, "discomfy_jobs_finished_total", state="delivered", workflow="txt2img") == 0
    await generate(studio)
    samples = await scrape_when_delivered(studio)
    assert value(samples, "discomfy_jobs_finished_total", state="delivered", workflow="txt2img") == 1
    assert value(samples, "discomfy_job_queue_wait_seconds_count", workflow="txt2img") == 1
    assert value(samples, "discomfy_job_run_seconds_count", workflow="txt2img") == 1
    assert value(samples, "discomfy_discord_edits_total", kind="final") == 1
    assert value(samples, "discomfy_discord_edits_total", kind="progress") >= 1
    assert value(samples, "discomfy_deliveries_total", fit="as_is") == 1
    assert value(samples, "discomfy_output_files") == 1
    [stored] = await studio.stack.store.stored_outputs()
    assert value(samples, "discomfy_output_bytes") == stored.size
    server = studio.comfy.url
    assert value(samples, "discomfy_comfyui_up", server=server) == 1
    assert value(samples, "discomfy_comfyui_jobs_in_flight", server=server) == 0
    assert value(samples, "discomfy_discord_gateway_up") == 1
    # The dashboard asks only for what a running bot exports.
    assert dashboard_metric_names() <= {name for name, _ in samples}


async def test_metrics_count_a_discord_429_by_its_scope(studio: Studio) -> None:
    await start_with_endpoint(studio)
    studio.comfy.config.step_duration = 0.05
    studio.discord.faults.rate_limit("/webhooks/*/messages/@original", method="PATCH", count=1)
    await generate(studio, steps=10)
    [refused] = studio.responses_429()
    assert refused.ratelimit_scope == "user"
    samples = await scrape_when_delivered(studio)
    assert value(samples, "discomfy_discord_rate_limited_total", scope="user") == 1
    assert value(samples, "discomfy_discord_rate_limited_total", scope="shared") == 0
    assert value(samples, "discomfy_discord_rate_limited_total", scope="global") == 0


async def test_metrics_count_a_comfyui_websocket_reconnect(studio: Studio) -> None:
    await start_with_endpoint(studio)
    studio.comfy.config.step_duration = 0.05
    studio.comfy.faults.drop_socket(after_messages=4)
    await generate(studio, steps=10)
    assert any(f.startswith("drop_socket") for f in studio.comfy.faults.fired)
    samples = await scrape_when_delivered(studio)
    assert value(samples, "discomfy_comfyui_reconnects_total", server=studio.comfy.url) >= 1


async def test_metrics_count_a_comfyui_call_that_was_retried(studio: Studio) -> None:
    await start_with_endpoint(studio)
    studio.comfy.faults.server_error("/view", count=1)
    await generate(studio)
    samples = await scrape_when_delivered(studio)
    assert value(samples, "discomfy_comfyui_retries_total", server=studio.comfy.url) >= 1


async def test_metrics_count_a_delivery_that_was_recompressed_to_fit(studio: Studio) -> None:
    studio.discord.config.upload_limit = 300_000
    studio.comfy.config.noisy_pictures = True  # a ~1 MB PNG
    await start_with_endpoint(studio)
    await generate(studio, steps=2, width=576, height=576)
    samples = await scrape_when_delivered(studio)
    assert value(samples, "discomfy_deliveries_total", fit="recompressed") == 1
    assert value(samples, "discomfy_deliveries_total", fit="as_is") == 0


async def test_the_endpoint_is_off_by_default(studio: Studio) -> None:
    assert studio.settings.ops.http_port == 0
    await studio.start()
    assert studio.app is not None and studio.app.ops is None


async def test_the_endpoint_listens_on_loopback_by_default(studio: Studio) -> None:
    app = await start_with_endpoint(studio)
    assert app.ops is not None
    assert app.ops.addresses == [("127.0.0.1", studio.settings.ops.http_port)]
