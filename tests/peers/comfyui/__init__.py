"""A ComfyUI 0.33 emulator (HTTP + websocket) on 127.0.0.1, faithful to the real recordings in ``transcripts/``.

Use
---
In tests, take the fixture (``fixtures.py`` is a pytest plugin)::

    async def test_render(comfyui_emulator):
        emu = comfyui_emulator
        client = ComfyClient(emu.url)                 # the bot's real client, unpatched
        ...
        entry = await emu.wait_for_history(prompt_id)  # written after execution_success
        assert entry["outputs"]["9"]["images"][0]["filename"] == "discomfy_00001_.png"

The fixture starts a fresh emulator (temporary input / output / temp folders), stops it after the test and fails
the test if the emulator itself raised (``emu.errors``). Outside pytest: ``async with ComfyEmulator(...) as emu:``
with ``emu.url`` (``http://127.0.0.1:PORT``) and ``emu.ws_url``; construct two for multi-server tests.
``ComfyEmulator(config=None, *, root=None, **overrides)`` takes an :class:`EmulatorConfig` and/or its fields:
``models`` (folder → file names), ``step_duration`` (seconds per sampler step / frame, default 5 ms),
``preview_method`` (the server's ``--preview-method``; default ``None``: previews only when a prompt's
``extra_data.preview_method`` is ``auto`` / ``latent2rgb`` / ``taesd``), ``legacy``, ``dup_client_id_bug``,
``noisy_pictures`` (VAEDecode draws seeded noise: PNGs of ~3 bytes a pixel, for benchmarks),
``client_prompt_id`` (``False``: an older server that ignores the client's ``prompt_id`` and mints its own).
``emu.config`` can be changed at any time. ``replay.Client`` is a small aiohttp client that behaves like the
recorder (``comfy_capture.py``), for tests that need exact frames.

The world
---------
Nodes (``/object_info``, inputs and outputs from ComfyUI's definitions): EmptyImage, GetImageSize (sends a type-3
text frame, broadcast), ImageBlur, ImageInvert, ImageScale, ImageScaleBy, PreviewImage, SaveImage, LoadImage,
ColorTransfer (one progress step per frame, no previews: ``frames_colortransfer.jsonl``), CheckpointLoaderSimple,
ImageOnlyCheckpointLoader, CLIPTextEncode, EmptyLatentImage, KSampler, KSamplerAdvanced (step progress; previews
when asked), VAEDecode, VAEEncode, UpscaleModelLoader, ImageUpscaleWithModel (one progress step per 512 px tile of
each frame, as ``comfy.utils.tiled_scale``), SVD_img2vid_Conditioning, VideoLinearCFGGuidance, CreateVideo,
SaveVideo (real MP4 via PyAV; ``video/`` prefix → subfolder), SaveWEBM, SaveAnimatedWEBP,
SaveAnimatedPNG. Pictures are real (Pillow): samplers decode to a gradient chosen by seed and prompt. Models:
``checkpoints`` = ``v1-5-pruned-emaonly.safetensors``, ``svd_xt.safetensors``; ``upscale_models`` =
``RealESRGAN_x4plus.pth``; anything else fails validation with ``value_not_in_list``. Uploaded files go to
``emu.input_dir`` (renamed ``name (1).png`` on collision unless ``overwrite``); outputs to ``emu.output_dir``,
previews to ``emu.temp_dir``; files survive ``restart()``.

Behaviour (from ComfyUI's ``server.py``, ``execution.py``, ``comfy_execution/*`` and the recordings)
------------------------------------------------------------------------------------------------
``POST /prompt`` numbers every request (``front`` → negative), honours a canonical-UUID ``prompt_id`` and
validates like the server (400 bodies with ``error`` and per-node ``node_errors``). One worker runs prompts by
``(number, prompt_id)`` in ComfyUI's execution order (``topo.py``) and caches per node id like its classic cache
(``execution_cached``). Messages per node: ``progress_state`` (running), ``executing``, ``progress`` (throttled:
≥100 ms and ≥0.5 %, first / last / previews always) with previews (type 4 to sockets that negotiated
``supports_preview_metadata``, else type 1), ``executed``, ``progress_state`` (finished); then
``execution_success`` / ``execution_error`` / ``execution_interrupted``, ``status``, ``executing`` ``node: null``.
Job messages go to the submitting clientId only; ``status`` and text frames are broadcast; a prompt without
``client_id`` broadcasts only ``progress`` / ``progress_state``. Routes: ``/prompt``, ``/queue``, ``/interrupt``
(targeted or global), ``/history[/{id}]``, ``/view``, ``/upload/image``, ``/api/jobs[/{id}[/cancel]]``,
``/object_info[/{class}]``, ``/system_stats``, ``/features``, ``/models[/{folder}]``, ``/embeddings``, ``/free``,
``/ws`` — each also under ``/api``.

Records and waits
-----------------
``emu.requests`` (:class:`HttpRecord`: monotonic ``time``, ``method``, ``route`` template, ``path``, ``query``,
parsed ``json``, multipart ``form``, ``status``, JSON ``response``, ``fault``), ``emu.ws_log`` (:class:`WsRecord`:
``direction`` out / in / open / close / lost, ``client_id``, ``socket`` serial, ``type``, ``data``, ``raw``),
``emu.sent_to(client_id)``, ``emu.queue.history``. Bounded waits: ``wait_for(condition, timeout)``,
``wait_for_request(predicate, method=, route=, since=)``, ``wait_for_ws(predicate, since=)``,
``wait_for_history(prompt_id)``, ``wait_until_idle()``.

Faults (``emu.faults``) and server states
-----------------------------------------
``drop_socket(client_id=None, at_node=, after_messages=)`` (abrupt close; later messages are lost, recorded as
``"lost"``; a reconnect gets ``status`` and, while its job runs, ``executing`` without ``prompt_id``),
``delay_ws_accept(seconds)`` (a job can finish before the socket connects), ``server_error(route, count=,
status=, method=)``, ``bad_body(route, "null" | "truncated" | "non_json", count=, method=)``,
``slow_view(seconds, count=)``, ``slow_http(route, seconds, count=None, method=)`` (any route answered late),
``delay_record(seconds)`` (history written that long after the prompt's last job message, as the real server's
clean-up can take), ``fail_node(node_id=, class_type=, message=, exception_type=, count=)``
(→ ``execution_error``; its ``message`` may quote server paths, as ComfyUI's do), ``huge_view(size,
declare_length=True, count=None)`` (``/view`` streams ``size`` bytes, a PNG signature then zeros, 1 MiB at a time,
with a ``Content-Length`` or chunked), ``hostile_output(ext=None, data=None, count=1)`` (the next image saves are
named ``.<ext>`` and/or hold ``data``: a shell script named ``.png``, a ``.sh``, a decompression-bomb PNG);
routes are fnmatch patterns on the template or path. Off by default: nothing here changes the recorded behaviour.
ComfyUI's duplicate-clientId race is
on by default (``config.dup_client_id_bug``). ``await emu.restart(down_for=0)``: sockets dropped, queue, history
and cache emptied, same port; ``await emu.go_down()`` / ``await emu.come_up()`` keep it down (connections
refused) in between. ``config.legacy``: no ``execution_success``, ``progress_state``, ``feature_flags``,
``prompt_id`` in ``progress``, targeted interrupt (any interrupt is global) or ``/api/jobs`` (404).
"""

from .faults import Faults
from .frames import decode_binary
from .records import HttpRecord, WsRecord
from .server import ComfyEmulator, EmulatorConfig

__all__ = ["ComfyEmulator", "EmulatorConfig", "Faults", "HttpRecord", "WsRecord", "decode_binary"]
