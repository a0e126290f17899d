"""HTTP routes, answering as ComfyUI 0.33's ``server.py`` does (bodies, status codes, ``application/json;
charset=utf-8``). Every route is served under ``/`` and ``/api/`` like the real server; ``/api/jobs*`` only
under ``/api`` (and 404 in legacy mode)."""

from __future__ import annotations

import mimetypes
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .object_info import NODE_SPECS, object_info_entry
from .queue import JOB_STATUSES, QueueItem, all_jobs, get_job
from .validation import validate_prompt

if TYPE_CHECKING:
    from .server import ComfyEmulator

MODEL_FOLDERS = [
    "checkpoints",
    "configs",
    "loras",
    "vae",
    "text_encoders",
    "diffusion_models",
    "clip_vision",
    "style_models",
    "embeddings",
    "diffusers",
    "vae_approx",
    "controlnet",
    "gligen",
    "upscale_models",
    "latent_upscale_models",
    "custom_nodes",
    "datasets",
    "hypernetworks",
    "photomaker",
    "classifiers",
    "model_patches",
    "audio_encoders",
    "background_removal",
    "frame_interpolation",
    "geometry_estimation",
    "optical_flow",
    "detection",
]


def _error(kind: str, message: str, details: str) -> web.Response:
    body = {"error": {"type": kind, "message": message, "details": details, "extra_info": {}}, "node_errors": {}}
    return web.json_response(body, status=400)


#: The start of a PNG file: what a huge ``/view`` body (``faults.huge_view``) begins with.
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def _stream_huge(request: web.Request, size: int, *, declare_length: bool) -> web.StreamResponse:
    """``size`` bytes (a PNG signature, then zeros) written 1 MiB at a time; a reader that stops early ends it."""
    response = web.StreamResponse(headers={"Content-Type": "image/png"})
    if declare_length:
        response.content_length = size
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    chunk = bytes(1 << 20)
    sent = 0
    try:
        while sent < size:
            piece = _PNG_SIGNATURE + chunk[len(_PNG_SIGNATURE) :] if sent == 0 else chunk
            piece = piece[: size - sent]
            await response.write(piece)
            sent += len(piece)
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass  # the client hung up: what a capped reader does
    return response


def _valid_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


class Routes:
    def __init__(self, emu: ComfyEmulator) -> None:
        self.emu = emu

    def register(self, app: web.Application) -> None:
        table: list[tuple[str, str, Any]] = [
            ("GET", "/ws", self.emu.hub.handle),
            ("GET", "/prompt", self.get_prompt),
            ("POST", "/prompt", self.post_prompt),
            ("GET", "/queue", self.get_queue),
            ("POST", "/queue", self.post_queue),
            ("POST", "/interrupt", self.post_interrupt),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_id),
            ("POST", "/history", self.post_history),
            ("GET", "/view", self.view),
            ("POST", "/upload/image", self.upload_image),
            ("GET", "/object_info", self.object_info),
            ("GET", "/object_info/{node_class}", self.object_info_one),
            ("GET", "/system_stats", self.system_stats),
            ("GET", "/features", self.features),
            ("GET", "/models", self.models),
            ("GET", "/models/{folder}", self.models_folder),
            ("GET", "/embeddings", self.embeddings),
            ("POST", "/free", self.free),
        ]
        for method, path, handler in table:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, "/api" + path, handler)
        app.router.add_get("/api/jobs", self.get_jobs)
        app.router.add_get("/api/jobs/{job_id}", self.get_job)
        app.router.add_post("/api/jobs/{job_id}/cancel", self.cancel_job)

    # -- queue -------------------------------------------------------------------------------------------------
    async def get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response(self.emu.queue.queue_info())

    async def post_prompt(self, request: web.Request) -> web.Response:
        json_data = await request.json()
        queue = self.emu.queue
        if "number" in json_data:
            number: float = float(json_data["number"])
        else:
            number = -queue.number if json_data.get("front") else queue.number
            queue.number += 1
        if "prompt" not in json_data:
            return _error("no_prompt", "No prompt provided", "No prompt provided")
        prompt = json_data["prompt"]
        prompt_id = json_data.get("prompt_id")
        if prompt_id is None or not self.emu.config.client_prompt_id:
            # Servers from before client-chosen ids (``client_prompt_id`` off) ignore the field and mint one.
            prompt_id = str(uuid.uuid4())
        elif not _valid_uuid(prompt_id):
            return _error(
                "invalid_prompt_id",
                "prompt_id must be a valid UUID",
                "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it to let the server "
                "generate one",
            )
        valid = validate_prompt(prompt, self.emu.file_list, self.emu.input_exists)
        extra_data = dict(json_data.get("extra_data", {}))
        if "client_id" in json_data:
            extra_data["client_id"] = json_data["client_id"]
        if not valid.ok:
            return web.json_response({"error": valid.error, "node_errors": valid.node_errors}, status=400)
        extra_data["create_time"] = int(time.time() * 1000)
        await queue.put(QueueItem(number, prompt_id, prompt, extra_data, valid.outputs))
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": valid.node_errors})

    async def get_queue(self, request: web.Request) -> web.Response:
        queue = self.emu.queue
        return web.json_response(
            {
                "queue_running": [item.as_list() for item in queue.running_items()],
                "queue_pending": [item.as_list() for item in queue.pending],
            }
        )

    async def post_queue(self, request: web.Request) -> web.Response:
        json_data = await request.json()
        if json_data.get("clear"):
            await self.emu.queue.wipe()
        for prompt_id in json_data.get("delete", []):
            await self.emu.queue.delete(prompt_id)
        return web.Response(status=200)

    async def post_interrupt(self, request: web.Request) -> web.Response:
        try:
            json_data = await request.json()
        except ValueError:
            json_data = {}
        prompt_id = json_data.get("prompt_id") if isinstance(json_data, dict) else None
        if prompt_id and not self.emu.config.legacy:
            if any(item.prompt_id == prompt_id for item in self.emu.queue.running_items()):
                self.emu.worker.interrupt()
        else:
            self.emu.worker.interrupt()
        return web.Response(status=200)

    # -- history and jobs --------------------------------------------------------------------------------------
    async def get_history(self, request: web.Request) -> web.Response:
        query = request.rel_url.query
        max_items = int(query["max_items"]) if "max_items" in query else None
        offset = int(query["offset"]) if "offset" in query else -1
        return web.json_response(self.emu.queue.get_history(max_items, offset))

    async def get_history_id(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        history = self.emu.queue.history
        return web.json_response({prompt_id: history[prompt_id]} if prompt_id in history else {})

    async def post_history(self, request: web.Request) -> web.Response:
        json_data = await request.json()
        if json_data.get("clear"):
            self.emu.queue.history.clear()
        for prompt_id in json_data.get("delete", []):
            self.emu.queue.history.pop(prompt_id, None)
        return web.Response(status=200)

    async def get_jobs(self, request: web.Request) -> web.Response:
        if self.emu.config.legacy:
            raise web.HTTPNotFound()
        query = request.rel_url.query
        statuses = JOB_STATUSES
        if query.get("status"):
            statuses = [s.strip().lower() for s in query["status"].split(",") if s.strip()]
            invalid = [s for s in statuses if s not in JOB_STATUSES]
            if invalid:
                msg = f"Invalid status value(s): {', '.join(invalid)}. Valid values: {', '.join(JOB_STATUSES)}"
                return web.json_response({"error": msg}, status=400)
        limit = int(query["limit"]) if "limit" in query else None
        if limit is not None and limit <= 0:
            return web.json_response({"error": "limit must be a positive integer"}, status=400)
        offset = max(0, int(query.get("offset", 0)))
        jobs = all_jobs(self.emu.queue, statuses, query.get("sort_by", "created_at"), query.get("sort_order", "desc"))
        total = len(jobs)
        page = jobs[offset:][:limit] if limit is not None else jobs[offset:]
        pagination = {"offset": offset, "limit": limit, "total": total, "has_more": offset + len(page) < total}
        return web.json_response({"jobs": page, "pagination": pagination})

    async def get_job(self, request: web.Request) -> web.Response:
        if self.emu.config.legacy:
            raise web.HTTPNotFound()
        job = get_job(self.emu.queue, request.match_info["job_id"])
        if job is None:
            return web.json_response({"error": "Job not found"}, status=404)
        return web.json_response(job)

    async def cancel_job(self, request: web.Request) -> web.Response:
        if self.emu.config.legacy:
            raise web.HTTPNotFound()
        job_id = request.match_info["job_id"]
        queue = self.emu.queue
        if any(item.prompt_id == job_id for item in queue.running_items()):
            self.emu.worker.interrupt()
            return web.json_response({"cancelled": True})
        return web.json_response({"cancelled": await queue.delete(job_id)})

    # -- files -------------------------------------------------------------------------------------------------
    async def view(self, request: web.Request) -> web.StreamResponse:
        delay = self.emu.faults.take_view_delay()
        if delay:
            import asyncio

            await asyncio.sleep(delay)
        query = request.rel_url.query
        filename = query.get("filename")
        if filename is None:
            return web.Response(status=404)
        if not filename or filename[0] == "/" or ".." in filename:
            return web.Response(status=400)
        base = self.emu.dir_by_type(query.get("type", "output"))
        if base is None:
            return web.Response(status=400)
        folder = base
        if "subfolder" in query:
            folder = base / query["subfolder"]
            if not folder.resolve().is_relative_to(base.resolve()):
                return web.Response(status=403)
        path = folder / os.path.basename(filename)
        if not path.is_file():
            return web.Response(status=404)
        huge = self.emu.faults.take_huge_view()
        if huge is not None:
            return await _stream_huge(request, huge.size, declare_length=huge.declare_length)
        data = path.read_bytes()
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers = {"Content-Disposition": f'filename="{path.name}"'}
        return web.Response(body=data, content_type=ctype, headers=headers)

    async def upload_image(self, request: web.Request) -> web.Response:
        post = await request.post()
        image = post.get("image")
        if not isinstance(image, web.FileField) or not image.filename:
            return web.Response(status=400)
        base = self.emu.dir_by_type(str(post.get("type") or "input")) or self.emu.input_dir
        kind = str(post.get("type") or "input")
        subfolder = str(post.get("subfolder", ""))
        folder = base / os.path.normpath(subfolder)  # noqa: ASYNC240
        filename = image.filename
        path = (folder / filename).resolve()
        if not path.is_relative_to(base.resolve()):
            return web.Response(status=400)
        folder.mkdir(parents=True, exist_ok=True)
        data = image.file.read()
        stem, ext = os.path.splitext(filename)
        duplicate = False
        if str(post.get("overwrite")) not in ("true", "1"):
            i = 1
            while path.exists():
                if path.read_bytes() == data:  # compare_image_hash: same bytes, same file
                    duplicate = True
                    break
                filename = f"{stem} ({i}){ext}"
                path = folder / filename
                i += 1
        if not duplicate:
            path.write_bytes(data)
        return web.json_response({"name": filename, "subfolder": subfolder, "type": kind})

    # -- information -------------------------------------------------------------------------------------------
    async def object_info(self, request: web.Request) -> web.Response:
        return web.json_response({name: object_info_entry(name, self.emu.file_list) for name in NODE_SPECS})

    async def object_info_one(self, request: web.Request) -> web.Response:
        name = request.match_info["node_class"]
        if name not in NODE_SPECS:
            return web.json_response({})
        return web.json_response({name: object_info_entry(name, self.emu.file_list)})

    async def system_stats(self, request: web.Request) -> web.Response:
        ram = 25276502016
        return web.json_response(
            {
                "system": {
                    "os": "linux",
                    "ram_total": ram,
                    "ram_free": ram // 2,
                    "comfyui_version": "0.33.0",
                    "required_frontend_version": "1.49.6",
                    "installed_templates_version": "0.11.44",
                    "required_templates_version": "0.11.44",
                    "comfy_package_versions": [],
                    "python_version": "3.12 (emulator)",
                    "pytorch_version": "2.13.0+cpu",
                    "embedded_python": False,
                    "deploy_environment": "local-git",
                    "argv": ["main.py", "--cpu"],
                },
                "devices": [
                    {
                        "name": "cpu",
                        "type": "cpu",
                        "index": None,
                        "vram_total": ram,
                        "vram_free": ram // 2,
                        "torch_vram_total": ram,
                        "torch_vram_free": ram // 2,
                    },
                ],
            }
        )

    async def features(self, request: web.Request) -> web.Response:
        from .ws import SERVER_FEATURES

        return web.json_response(dict(SERVER_FEATURES))

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(MODEL_FOLDERS)

    async def models_folder(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in MODEL_FOLDERS:
            return web.Response(status=404)
        return web.json_response(self.emu.file_list(folder))

    async def embeddings(self, request: web.Request) -> web.Response:
        return web.json_response([os.path.splitext(n)[0] for n in self.emu.file_list("embeddings")])

    async def free(self, request: web.Request) -> web.Response:
        await request.json()
        return web.Response(status=200)
