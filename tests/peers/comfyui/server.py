"""The emulator process: configuration, the aiohttp app on 127.0.0.1, records, restart / down, bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from .executor import Worker
from .faults import Faults
from .outages import Outages
from .queue import PromptQueue
from .records import HttpRecord, WsRecord
from .routes import Routes
from .ws import SocketHub

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _default_models() -> dict[str, list[str]]:
    return {
        "checkpoints": ["v1-5-pruned-emaonly.safetensors", "svd_xt.safetensors"],
        "upscale_models": ["RealESRGAN_x4plus.pth"],
        "loras": [],
        "vae": [],
        "embeddings": [],
        # FrameInterpolationModelLoader's folder: empty, as on a server without an interpolation model; a test
        # that wants the stage puts a file name here before the bot first reads /object_info.
        "frame_interpolation": [],
    }


@dataclass
class EmulatorConfig:
    """Knobs, changeable at any time (``emu.config``).

    ``models``: folder → file names the loaders accept (and ``/models/{folder}`` lists). ``step_duration``:
    seconds per sampler step / per frame. ``preview_method``: the server's ``--preview-method`` (``None`` = only
    when a prompt's ``extra_data.preview_method`` asks). ``legacy``: an old server (no ``execution_success``,
    ``progress_state``, ``prompt_id`` in ``progress``, targeted interrupt, ``/api/jobs``, ``feature_flags``).
    ``dup_client_id_bug``: keep ComfyUI's reconnect race (on by default, as the real server).
    ``noisy_pictures``: VAEDecode draws random noise (fixed by seed and prompt) instead of a gradient, so a saved
    PNG is about ``3 × width × height`` bytes — for benchmarks that need big files (576×576 ≈ 1 MB)."""

    models: dict[str, list[str]] = field(default_factory=_default_models)
    step_duration: float = 0.005
    preview_method: str | None = None
    legacy: bool = False
    dup_client_id_bug: bool = True
    noisy_pictures: bool = False
    #: False: an older server that ignores the ``prompt_id`` a client sends with ``POST /prompt`` and mints its own.
    client_prompt_id: bool = True


class ComfyEmulator:
    """A ComfyUI 0.33 server on 127.0.0.1. ``async with ComfyEmulator() as emu: ...`` (``emu.url``)."""

    def __init__(self, config: EmulatorConfig | None = None, *, root: Path | None = None, **overrides: Any) -> None:
        self.config = config or EmulatorConfig()
        for key, value in overrides.items():
            setattr(self.config, key, value)
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="comfy-emu-")) if root is None else Path(root)
        self.input_dir, self.output_dir, self.temp_dir = (self.root / n for n in ("input", "output", "temp"))
        for d in (self.input_dir, self.output_dir, self.temp_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.faults = Faults()
        self.outages = Outages(self)
        self.requests: list[HttpRecord] = []
        self.ws_log: list[WsRecord] = []
        self.errors: list[BaseException] = []
        self.hub = SocketHub(self)
        self.queue = PromptQueue(self)
        self.worker = Worker(self)
        self.routes = Routes(self)
        self.port = 0
        self.host = "127.0.0.1"
        self._runner: web.AppRunner | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    async def start(self) -> None:
        await self._listen()
        self._start_worker()

    async def stop(self) -> None:
        await self._stop_worker()
        await self._unlisten()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    async def __aenter__(self) -> ComfyEmulator:
        await self.start()
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    async def go_down(self) -> None:
        """The process dies: sockets drop, connections are refused, queue, history and caches are gone (files on
        disk survive). ``come_up()`` starts it again on the same port."""
        await self._stop_worker()
        await self._unlisten()
        self.queue.reset()
        self.worker = Worker(self)
        self.notify()

    async def come_up(self) -> None:
        await self._listen()
        self._start_worker()

    async def restart(self, down_for: float = 0.0) -> None:
        await self.go_down()
        if down_for > 0:
            await asyncio.sleep(down_for)
        await self.come_up()

    def _start_worker(self) -> None:
        self._worker_task = asyncio.create_task(self._run_worker())

    async def _run_worker(self) -> None:
        try:
            await self.worker.run_forever()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.errors.append(exc)
            raise

    async def _stop_worker(self) -> None:
        if self._worker_task is not None:
            self._worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker_task
            self._worker_task = None

    async def _listen(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=200 * 1024 * 1024)
        self.routes.register(app)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _unlisten(self) -> None:
        await self.hub.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- requests ----------------------------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else request.path
        record = HttpRecord(time.monotonic(), request.method, route, request.path, dict(request.rel_url.query))
        self.requests.append(record)
        if request.can_read_body and request.content_type == "application/json":
            try:
                record.json = await request.json()
            except ValueError:
                record.json = None
        fault = self.faults.take_http(request.method, route, request.path) if route != "/ws" else None
        delay = self.faults.take_http_delay(request.method, route, request.path) if route != "/ws" else 0.0
        if delay:
            record.fault = "slow_http"
            await asyncio.sleep(delay)
        if fault is not None and fault.kind == "server_error":
            record.status, record.fault = fault.status, fault.kind
            self.notify()
            return web.Response(status=fault.status, text="500 Internal Server Error\n\nServer got itself in trouble")
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            record.status = exc.status
            self.notify()
            raise
        except Exception as exc:
            self.errors.append(exc)
            record.status = 500
            self.notify()
            raise
        if (
            route in ("/prompt", "/api/prompt")
            and request.method == "POST"
            and self.outages.after_prompt(request, response)
        ):
            record.status, record.fault = response.status, "lose_prompt_answer"
            self.notify()
            return response
        if request.content_type.startswith("multipart/"):
            post = await request.post()
            record.form = {
                k: (v.filename, v.file.seek(0) or v.file.read()) if isinstance(v, web.FileField) else v
                for k, v in post.items()
            }
        record.status = response.status
        if isinstance(response, web.Response) and response.content_type == "application/json":
            import json

            body = response.body
            if isinstance(body, bytes):
                record.response = json.loads(body)
            if fault is not None:
                record.fault = fault.kind
                response = self._broken(response, fault.kind)
        self.notify()
        return response

    @staticmethod
    def _broken(response: web.Response, kind: str) -> web.Response:
        body = response.body if isinstance(response.body, bytes) else b""
        if kind == "null":
            data = b"null"
        elif kind == "truncated":
            data = body[: max(1, len(body) // 2)]
        else:
            data = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        return web.Response(status=200, body=data, content_type="application/json", charset="utf-8")

    # -- the world ---------------------------------------------------------------------------------------------
    def file_list(self, folder: str) -> list[str]:
        if folder == "input":
            files = [p.name for p in self.input_dir.iterdir() if p.is_file()]
            return sorted(files)
        return list(self.config.models.get(folder, []))

    def input_exists(self, name: str) -> bool:
        path = (self.input_dir / name).resolve()
        return path.is_relative_to(self.input_dir.resolve()) and path.is_file()

    def dir_by_type(self, kind: str) -> Path | None:
        return {"input": self.input_dir, "output": self.output_dir, "temp": self.temp_dir}.get(kind)

    # -- waiting -----------------------------------------------------------------------------------------------
    def notify(self) -> None:
        self._changed.set()

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 5.0) -> Any:  # noqa: ASYNC109
        """Wait until ``condition()`` is truthy (checked at every request, frame and job change); return it."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout}s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    async def wait_for_request(
        self,
        predicate: Callable[[HttpRecord], bool] | None = None,
        *,
        method: str | None = None,
        route: str | None = None,
        since: int = 0,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> HttpRecord:
        def find() -> HttpRecord | None:
            for rec in self.requests[since:]:
                if (method and rec.method != method) or (route and rec.route not in (route, "/api" + route)):
                    continue
                if rec.status and (predicate is None or predicate(rec)):
                    return rec
            return None

        result: HttpRecord = await self.wait_for(find, timeout)
        return result

    async def wait_for_ws(
        self,
        predicate: Callable[[WsRecord], bool],
        *,
        since: int = 0,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> WsRecord:
        result: WsRecord = await self.wait_for(
            lambda: next((r for r in self.ws_log[since:] if predicate(r)), None), timeout
        )
        return result

    async def wait_for_history(self, prompt_id: str, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
        """Wait until the prompt's history entry is written; return it."""
        entry: dict[str, Any] = await self.wait_for(lambda: self.queue.history.get(prompt_id), timeout)
        return entry

    async def wait_until_idle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await self.wait_for(lambda: not self.queue.pending and not self.queue.running, timeout)

    def sent_to(self, client_id: str, since: int = 0) -> list[WsRecord]:
        """Frames the emulator delivered to ``client_id``'s sockets, in order."""
        return [r for r in self.ws_log[since:] if r.direction == "out" and r.client_id == client_id]
