"""The metrics registry, the health and metrics endpoint's own rules, and the Grafana dashboard's queries.

The endpoint's real answers with the whole bot running are in tests/e2e/test_ops.py; here: what needs no bot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from discomfy.bot.delivery import fits_of
from discomfy.comfy.pool import ServerPool
from discomfy.config import OpsSettings, Settings, load_settings
from discomfy.errors import StartupError
from discomfy.jobs.records import OutputKind, StoredOutput
from discomfy.jobs.state import Job, JobState
from discomfy.jobs.store import JobStore
from discomfy.media.fit import FitResult, Upload
from discomfy.metrics import Metrics, ServerView, View
from discomfy.ops_http import OpsServer, Probe
from tests.jobs.factories import T0, make_job
from tests.ops_support import dashboard_metric_names, exprs, load, metric_names, panels
from tests.peers.discord import DiscordEmulator

REPO = Path(__file__).resolve().parent.parent


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics).get((name, frozenset(labels.items())), 0.0)


# -- the registry --


def test_each_bot_counts_on_its_own_registry_never_the_global_one() -> None:
    one, two = Metrics(), Metrics()
    one.edited("final")
    assert value(one, "discomfy_discord_edits_total", kind="final") == 1
    assert value(two, "discomfy_discord_edits_total", kind="final") == 0
    assert not [name for name in REGISTRY._names_to_collectors if name.startswith("discomfy")]


def test_a_job_is_timed_and_counted_once_at_its_end() -> None:
    metrics = Metrics()
    times = {"created_at": 100.0, "submitted_at": 102.0}
    for state, started, now in [("waiting", None, 100.0), ("submitting", None, 102.0), ("running", 103.0, 103.0)]:
        metrics.job_moved(state, "txt2img", **times, started_at=started, now=now)
    metrics.job_moved("delivering", "txt2img", **times, started_at=103.0, now=110.0)
    assert value(metrics, "discomfy_job_run_seconds_count", workflow="txt2img") == 0
    metrics.job_moved("delivered", "txt2img", **times, started_at=103.0, now=111.0)
    assert value(metrics, "discomfy_job_queue_wait_seconds_sum", workflow="txt2img") == 3.0
    assert value(metrics, "discomfy_job_run_seconds_sum", workflow="txt2img") == 8.0
    assert value(metrics, "discomfy_job_run_seconds_count", workflow="txt2img") == 1
    assert value(metrics, "discomfy_jobs_finished_total", state="delivered", workflow="txt2img") == 1


def test_a_job_that_ended_before_it_was_seen_running_is_timed_from_its_submission() -> None:
    metrics = Metrics()
    metrics.job_moved("failed", "txt2img", created_at=100.0, submitted_at=101.0, started_at=None, now=105.0)
    assert value(metrics, "discomfy_job_queue_wait_seconds_sum", workflow="txt2img") == 1.0
    assert value(metrics, "discomfy_job_run_seconds_sum", workflow="txt2img") == 4.0


def test_a_job_cancelled_before_it_reached_comfyui_is_counted_but_not_timed() -> None:
    metrics = Metrics()
    metrics.job_moved("cancelled", "txt2img", created_at=100.0, submitted_at=None, started_at=None, now=101.0)
    assert value(metrics, "discomfy_jobs_finished_total", state="cancelled", workflow="txt2img") == 1
    assert value(metrics, "discomfy_job_run_seconds_count", workflow="txt2img") == 0
    assert value(metrics, "discomfy_job_queue_wait_seconds_count", workflow="txt2img") == 0


def test_the_state_read_at_scrape_time_is_exported() -> None:
    metrics = Metrics()
    metrics.observe(
        View(
            jobs={("running", "txt2img"): 2, ("delivered", "svd"): 5},
            servers=(ServerView("http://gpu:8188", True, 3, 1, 4, 2),),
            refusals={"shared": 1, "user": 2},
            output_files=7,
            output_bytes=1234,
            gateway_up=True,
        )
    )
    assert value(metrics, "discomfy_jobs", state="running", workflow="txt2img") == 2
    assert value(metrics, "discomfy_jobs", state="delivered", workflow="svd") == 5
    server = {"server": "http://gpu:8188"}
    assert value(metrics, "discomfy_comfyui_up", **server) == 1
    assert value(metrics, "discomfy_comfyui_queue_size", **server) == 3
    assert value(metrics, "discomfy_comfyui_jobs_in_flight", **server) == 1
    assert value(metrics, "discomfy_comfyui_retries_total", **server) == 4
    assert value(metrics, "discomfy_comfyui_reconnects_total", **server) == 2
    assert value(metrics, "discomfy_discord_rate_limited_total", scope="user") == 2
    assert value(metrics, "discomfy_discord_rate_limited_total", scope="shared") == 1
    assert value(metrics, "discomfy_discord_rate_limited_total", scope="global") == 0
    assert value(metrics, "discomfy_output_files") == 7
    assert value(metrics, "discomfy_output_bytes") == 1234
    assert value(metrics, "discomfy_discord_gateway_up") == 1


def test_a_429_scope_discord_never_documented_is_counted_as_other_not_as_a_new_label() -> None:
    metrics = Metrics()
    metrics.observe(View(refusals={"<script>": 3, "user": 1}))
    scopes = {
        dict(labels)["scope"] for name, labels in samples(metrics) if name == "discomfy_discord_rate_limited_total"
    }
    assert scopes == {"user", "shared", "global", "other"}
    assert value(metrics, "discomfy_discord_rate_limited_total", scope="other") == 3


def upload(name: str, mime: str, changed: bool) -> Upload:
    return Upload(name, b"x", mime, name, 1, changed, None)


def test_deliveries_are_told_apart_by_what_fitting_them_took() -> None:
    fitted = FitResult(
        (
            upload("a.png", "image/png", False),
            upload("b.webp", "image/webp", True),
            upload("c.mp4", "video/mp4", True),
        ),
        too_big=("d.png",),
        notes=(),
    )
    assert fits_of(fitted) == ["as_is", "recompressed", "transcoded", "too_big"]


# -- what the store tells --


async def test_the_store_tells_its_hook_every_move_and_a_failing_hook_undoes_nothing(store: JobStore) -> None:
    seen: list[tuple[str, float]] = []
    store.on_transition = lambda job, now: seen.append((job.state, now))
    await store.create(make_job(1))
    await store.transition(make_job(1).id, JobState.CANCELLED)
    assert [state for state, _ in seen] == ["cancelled"]

    def broken(job: Job, now: float) -> None:
        raise RuntimeError("a bug in counting")

    store.on_transition = broken
    await store.create(make_job(2))
    moved = await store.transition(make_job(2).id, JobState.SUBMITTING, server_url="http://s", prompt_id="p")
    assert moved.state is JobState.SUBMITTING
    assert (await store.get(moved.id)).state is JobState.SUBMITTING


async def test_store_stats_count_jobs_by_state_and_workflow_and_the_files_still_on_disk(store: JobStore) -> None:
    for number in (1, 2, 3):
        job = make_job(number)
        await store.create(job if number < 3 else dataclasses.replace(job, workflow="upscale"))
    await store.transition(make_job(1).id, JobState.CANCELLED)
    for index, size in enumerate((100, 250)):
        await store.add_output(
            StoredOutput(make_job(2).id, index, OutputKind.IMAGE, f"outputs/{index}.png", "image/png", size, "0", T0)
        )
    await store.evict_output(make_job(2).id, 0)
    stats = await store.stats()
    assert stats.jobs == {("cancelled", "txt2img"): 1, ("waiting", "txt2img"): 1, ("waiting", "upscale"): 1}
    assert (stats.output_files, stats.output_bytes) == (1, 250)


# -- the endpoint --


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[JobStore]:
    async with JobStore(tmp_path / "jobs.sqlite3") as opened:
        yield opened


def probe(store: JobStore | None, pool: ServerPool | None, *, gateway: bool = True) -> Probe:
    parts = (store, pool) if store is not None and pool is not None else None
    return Probe(lambda: gateway, lambda: parts, lambda: {})


async def test_health_names_every_problem_at_once(store: JobStore, session: aiohttp.ClientSession) -> None:
    pool = ServerPool(["http://127.0.0.1:9"], session)  # never checked: not healthy
    await store.close()  # a database that cannot be written
    problems = await probe(store, pool, gateway=False).problems()
    assert problems == [
        "the Discord gateway is not connected",
        "no ComfyUI server answers (of 1 configured)",
        "the database cannot be written (see the bot's log)",
    ]


async def test_health_while_starting_says_so() -> None:
    assert await probe(None, None).problems() == [
        "the bot is starting: its job store and ComfyUI pool are not open yet"
    ]


async def test_health_is_good_when_the_gateway_a_server_and_the_database_are(
    store: JobStore, session: aiohttp.ClientSession
) -> None:
    pool = ServerPool(["http://127.0.0.1:9"], session)
    pool.servers[0].healthy = True  # as the pool's last health check left it
    assert await probe(store, pool).problems() == []


async def test_the_endpoint_answers_503_with_reasons_and_nothing_else_on_other_paths(
    session: aiohttp.ClientSession,
) -> None:
    port = free_port()
    server = await OpsServer.start(OpsSettings(http_port=port), Metrics(), probe(None, None, gateway=False))
    try:
        async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 503
            body = await response.json()
        assert body["status"] == "unhealthy" and len(body["problems"]) == 2
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert "discomfy_discord_gateway_up 0.0" in await response.text()
        async with session.get(f"http://127.0.0.1:{port}/") as response:
            assert response.status == 404
        async with session.post(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 405
    finally:
        await server.close()


async def test_a_port_that_cannot_be_bound_is_a_startup_error_naming_it_and_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError) as caught:
            await OpsServer.start(OpsSettings(http_port=port), Metrics(), probe(None, None))
    assert f"127.0.0.1:{port}" in str(caught.value) and "DISCOMFY_HTTP_PORT" in str(caught.value)


def test_the_endpoint_is_off_and_on_loopback_by_default_and_set_by_the_environment(tmp_path: Path) -> None:
    defaults = Settings().ops
    assert (defaults.http_host, defaults.http_port) == ("127.0.0.1", 0)
    env = {"DISCOMFY_HTTP_HOST": "0.0.0.0", "DISCOMFY_HTTP_PORT": "9464", "DISCORD_TOKEN": "x"}
    (tmp_path / "discomfy.toml").write_text("")
    settings = load_settings(tmp_path / "discomfy.toml", env)
    assert (settings.ops.http_host, settings.ops.http_port) == ("0.0.0.0", 9464)


async def test_run_py_exits_1_with_one_line_when_the_port_is_taken(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(REPO / "run.py"),
            cwd=tmp_path,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DISCOMFY_", "COMFYUI_"))},
                "DISCORD_TOKEN": emu.bot_token,
                "DISCORD_API_BASE": emu.api_base,
                "COMFYUI_URL": "http://127.0.0.1:9",
                "DISCOMFY_DATA_DIR": str(tmp_path / "data"),
                "DISCOMFY_HTTP_PORT": str(port),
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr_bytes = await asyncio.wait_for(process.communicate(), 30)
    stderr = stderr_bytes.decode()
    assert process.returncode == 1, stderr
    [line] = [x for x in stderr.splitlines() if x.startswith("discomfy could not start")]
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert "Traceback" not in stderr and emu.bot_token not in stderr


# -- the dashboard --


def test_every_dashboard_query_names_a_metric_the_bot_exports() -> None:
    exported = Metrics().names()
    for expr in exprs(load()):
        assert metric_names(expr), expr
        assert metric_names(expr) <= exported, expr


def test_every_exported_metric_has_a_panel() -> None:
    used = dashboard_metric_names()
    families = {family.name for family in Metrics().registry.collect()}
    missing = {f for f in families if not any(name == f or name.startswith(f + "_") for name in used)}
    assert missing == set()


def test_the_query_reader_finds_the_names_and_catches_a_misspelt_one() -> None:
    expr = 'histogram_quantile(0.95, sum by (le) (rate(discomfy_job_run_seconds_bucket{instance=~"$x"}[5m])))'
    assert metric_names(expr) == {"discomfy_job_run_seconds_bucket"}
    assert not metric_names("sum(discomfy_job_run_second_count)") <= Metrics().names()


def test_the_dashboard_is_importable_with_a_prometheus_datasource_variable() -> None:
    dashboard = load()
    [source] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert source["query"] == "prometheus"
    for panel in panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": f"${{{source['name']}}}"}, panel["title"]
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"]
