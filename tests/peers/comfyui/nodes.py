"""Per-node behaviour: what each class type computes, which progress it reports and which files it writes.

A node is ``async def node(ctx, **inputs) -> (outputs_tuple, ui_or_None)``. Inputs arrive resolved (links replaced
by upstream values, defaults filled in for missing optional inputs). ``ctx`` (:class:`executor.NodeContext`)
gives the node its progress bar (``ctx.progress(total)``, throttled like ComfyUI's ``ProgressBar``), step pacing
(``ctx.step()``, ``config.step_duration`` each), text frames (``ctx.send_text``), preview pictures
(``ctx.previews``), folders and model lists, and ``ctx.blocking`` to run Pillow / PyAV off the event loop.

Values: ``IMAGE`` is :class:`media.ImageBatch`, ``LATENT`` :class:`media.Latent`, models and conditionings are
small dicts naming what they came from. Loaders fail like ComfyUI when the file is gone after validation.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from . import media
from .media import ImageBatch, Latent

if TYPE_CHECKING:
    from .executor import NodeContext

NodeResult = tuple[tuple[Any, ...], dict[str, Any] | None]
NodeFn = Callable[..., Awaitable[NodeResult]]
NODES: dict[str, NodeFn] = {}


def node(name: str) -> Callable[[NodeFn], NodeFn]:
    def register(fn: NodeFn) -> NodeFn:
        NODES[name] = fn
        return fn

    return register


# --------------------------------------------------------------------------------------------------- images
@node("EmptyImage")
async def empty_image(ctx: NodeContext, width: int, height: int, batch_size: int = 1, color: int = 0) -> NodeResult:
    img = await ctx.blocking(media.solid, width, height, color)
    return (ImageBatch([img] * batch_size),), None


@node("GetImageSize")
async def get_image_size(ctx: NodeContext, image: ImageBatch) -> NodeResult:
    n = len(image.frames)
    await ctx.send_text(f"width: {image.width}, height: {image.height}\n batch size: {n}")
    return (image.width, image.height, n), None


@node("ImageBlur")
async def image_blur(ctx: NodeContext, image: ImageBatch, blur_radius: int, sigma: float) -> NodeResult:
    return (await ctx.blocking(image.map, lambda f: media.blur(f, blur_radius, sigma)),), None


@node("ImageInvert")
async def image_invert(ctx: NodeContext, image: ImageBatch) -> NodeResult:
    return (await ctx.blocking(image.map, media.invert),), None


@node("ImageScale")
async def image_scale(
    ctx: NodeContext, image: ImageBatch, upscale_method: str, width: int, height: int, crop: str
) -> NodeResult:
    return (await ctx.blocking(image.map, lambda f: media.scale(f, width, height, upscale_method, crop)),), None


@node("ImageScaleBy")
async def image_scale_by(ctx: NodeContext, image: ImageBatch, upscale_method: str, scale_by: float) -> NodeResult:
    w, h = round(image.width * scale_by), round(image.height * scale_by)
    return (await ctx.blocking(image.map, lambda f: media.scale(f, w, h, upscale_method)),), None


@node("ColorTransfer")
async def color_transfer(
    ctx: NodeContext, image_target: ImageBatch, image_ref: ImageBatch, method: str, source_stats: str, **rest: Any
) -> NodeResult:
    strength = float(rest.get("strength", 1.0))
    # One progress step per frame, as ComfyUI's ColorTransfer (comfy.utils.ProgressBar(num_frames)).
    total = len(image_target.frames)
    bar = ctx.progress(total)
    done: dict[int, Any] = {}
    frames = []
    for i, frame in enumerate(image_target.frames):
        await ctx.step()
        if id(frame) not in done:
            done[id(frame)] = await ctx.blocking(media.tint, frame, image_ref.frames[0], strength)
        frames.append(done[id(frame)])
        await bar.update_absolute(i + 1)
    return (ImageBatch(frames),), None


@node("FrameInterpolate")
async def frame_interpolate(
    ctx: NodeContext, interp_model: dict[str, Any], images: ImageBatch, multiplier: int
) -> NodeResult:
    """ComfyUI's ``FrameInterpolate`` (comfy_extras/nodes_frame_interpolation.py): fewer than 2 frames (or a
    multiplier below 2) pass through untouched, with no progress bar. Else ``ProgressBar(pairs × (m − 1))`` and,
    per pair, the ``m − 1`` frames between its ends: FILM's ``forward_multi_timestep`` and RIFE's first batch
    (``batch = m − 1`` until an out-of-memory error halves it) both make them at once, so the bar moves by
    ``m − 1`` once per pair; the pair's end frame follows. ``(frames − 1) × m + 1`` frames come out. No previews."""
    if len(images.frames) < 2 or multiplier < 2:
        return (images,), None
    pairs, new = len(images.frames) - 1, multiplier - 1
    bar = ctx.progress(pairs * new)
    frames = [images.frames[0]]
    for i in range(pairs):
        before, after = images.frames[i], images.frames[i + 1]
        for _ in range(new):
            await ctx.step()
        between = [await ctx.blocking(media.blend, before, after, t / multiplier) for t in range(1, multiplier)]
        frames += [*between, after]
        await bar.update_absolute((i + 1) * new)
    return (ImageBatch(frames),), None


@node("LoadImage")
async def load_image(ctx: NodeContext, image: str) -> NodeResult:
    batch = await ctx.blocking(media.load_image, ctx.input_path(image))
    mask = {"mask": (batch.width, batch.height)}
    return (batch, mask), None


# ---------------------------------------------------------------------------------------------- savers
async def _save_images(ctx: NodeContext, images: ImageBatch, prefix: str, kind: str) -> NodeResult:
    folder = ctx.output_dir if kind == "output" else ctx.temp_dir
    results = []
    for frame in images.frames:
        hostile = ctx.run.emu.faults.take_hostile_output()
        ext = hostile.ext if hostile is not None and hostile.ext else "png"
        path, filename, subfolder = await ctx.blocking(media.next_path, folder, prefix, ext)
        if hostile is not None and hostile.data is not None:
            await ctx.blocking(path.write_bytes, hostile.data)
        else:
            await ctx.blocking(media.save_png, path, frame)
        results.append({"filename": filename, "subfolder": subfolder, "type": kind})
    return (images,), {"images": results}


@node("SaveImage")
async def save_image(ctx: NodeContext, images: ImageBatch, filename_prefix: str = "ComfyUI") -> NodeResult:
    return await _save_images(ctx, images, filename_prefix, "output")


@node("PreviewImage")
async def preview_image(ctx: NodeContext, images: ImageBatch) -> NodeResult:
    # ComfyUI: "ComfyUI_temp_" + five random letters, chosen once per node object.
    suffix = "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
    return await _save_images(ctx, images, f"ComfyUI_temp_{suffix}", "temp")


async def _save_animation(ctx: NodeContext, images: ImageBatch, prefix: str, ext: str, save: Any) -> NodeResult:
    path, filename, subfolder = await ctx.blocking(media.next_path, ctx.output_dir, prefix, ext)
    await ctx.blocking(save, path)
    ui = {"images": [{"filename": filename, "subfolder": subfolder, "type": "output"}], "animated": [True]}
    return (images,), ui


@node("SaveAnimatedWEBP")
async def save_animated_webp(
    ctx: NodeContext, images: ImageBatch, filename_prefix: str, fps: float, lossless: bool, quality: int, method: str
) -> NodeResult:
    return await _save_animation(
        ctx, images, filename_prefix, "webp", lambda p: media.save_webp(p, images, fps, lossless, quality)
    )


@node("SaveAnimatedPNG")
async def save_animated_png(
    ctx: NodeContext, images: ImageBatch, filename_prefix: str, fps: float, compress_level: int = 4
) -> NodeResult:
    return await _save_animation(
        ctx, images, filename_prefix, "png", lambda p: media.save_apng(p, images, fps, compress_level)
    )


@node("SaveWEBM")
async def save_webm(
    ctx: NodeContext, images: ImageBatch, filename_prefix: str, codec: str, fps: float, crf: float
) -> NodeResult:
    return await _save_animation(
        ctx, images, filename_prefix, "webm", lambda p: media.save_video(p, images, fps, "webm")
    )


@node("CreateVideo")
async def create_video(ctx: NodeContext, images: ImageBatch, fps: float, **_: Any) -> NodeResult:
    return ({"images": images, "fps": fps},), None


@node("SaveVideo")
async def save_video(
    ctx: NodeContext, video: dict[str, Any], filename_prefix: str, format: str, **_: Any
) -> NodeResult:
    container = "webm" if format == "webm" else "mp4"  # "auto" from images is mp4, as ComfyUI's VideoFromComponents
    images: ImageBatch = video["images"]
    path, filename, subfolder = await ctx.blocking(media.next_path, ctx.output_dir, filename_prefix, container)
    await ctx.blocking(media.save_video, path, images, float(video["fps"]), container)
    ui = {"images": [{"filename": filename, "subfolder": subfolder, "type": "output"}], "animated": [True]}
    return (video,), ui


# ---------------------------------------------------------------------------------------------- models
async def _load(ctx: NodeContext, folder: str, name: str) -> dict[str, Any]:
    if name not in ctx.model_list(folder):
        raise FileNotFoundError(f"Model in folder '{folder}' with filename '{name}' not found.")
    await ctx.step()
    return {"folder": folder, "name": name}


@node("CheckpointLoaderSimple")
async def checkpoint_loader(ctx: NodeContext, ckpt_name: str) -> NodeResult:
    model = await _load(ctx, "checkpoints", ckpt_name)
    return ({**model, "kind": "MODEL"}, {**model, "kind": "CLIP"}, {**model, "kind": "VAE"}), None


@node("FrameInterpolationModelLoader")
async def frame_interpolation_model_loader(ctx: NodeContext, model_name: str) -> NodeResult:
    # ComfyUI: get_full_path_or_raise("frame_interpolation", name), then a FILM or RIFE state dict.
    model = await _load(ctx, "frame_interpolation", model_name)
    return ({**model, "kind": "INTERP_MODEL"},), None


@node("ImageOnlyCheckpointLoader")
async def image_only_checkpoint_loader(ctx: NodeContext, ckpt_name: str) -> NodeResult:
    model = await _load(ctx, "checkpoints", ckpt_name)
    return ({**model, "kind": "MODEL"}, {**model, "kind": "CLIP_VISION"}, {**model, "kind": "VAE"}), None


@node("UpscaleModelLoader")
async def upscale_model_loader(ctx: NodeContext, model_name: str) -> NodeResult:
    model = await _load(ctx, "upscale_models", model_name)
    match = re.search(r"x(\d+)", model_name.lower())
    scale = int(match.group(1)) if match else 4
    return ({**model, "kind": "UPSCALE_MODEL", "scale": scale},), None


@node("ImageUpscaleWithModel")
async def image_upscale_with_model(ctx: NodeContext, upscale_model: dict[str, Any], image: ImageBatch) -> NodeResult:
    # ComfyUI ticks once per 512 px tile (32 px overlap) of each frame: ProgressBar(frames × tiles), through
    # comfy.utils.tiled_scale; a frame of at most 512 × 512 is one tick.
    scale = int(upscale_model.get("scale", 4))
    tiles = tiled_scale_steps(image.width, image.height)
    bar = ctx.progress(len(image.frames) * tiles)
    frames = []
    done = 0
    for frame in image.frames:
        for _ in range(tiles):
            await ctx.step()
            done += 1
            await bar.update_absolute(done)
        frames.append(await ctx.blocking(media.scale, frame, frame.width * scale, frame.height * scale, "bicubic"))
    return (ImageBatch(frames),), None


def tiled_scale_steps(width: int, height: int, tile: int = 512, overlap: int = 32) -> int:
    """``comfy.utils.get_tiled_scale_steps``: how many tiles ``tiled_scale`` runs over one frame."""
    rows = 1 if height <= tile else math.ceil((height - overlap) / (tile - overlap))
    cols = 1 if width <= tile else math.ceil((width - overlap) / (tile - overlap))
    return rows * cols


@node("VideoLinearCFGGuidance")
async def video_linear_cfg(ctx: NodeContext, model: dict[str, Any], min_cfg: float) -> NodeResult:
    return ({**model, "min_cfg": min_cfg},), None


@node("CLIPTextEncode")
async def clip_text_encode(ctx: NodeContext, text: str, clip: dict[str, Any]) -> NodeResult:
    return ({"text": text, "clip": clip["name"]},), None


@node("EmptyLatentImage")
async def empty_latent(ctx: NodeContext, width: int, height: int, batch_size: int = 1) -> NodeResult:
    return (Latent(width, height, batch_size),), None


@node("SVD_img2vid_Conditioning")
async def svd_conditioning(
    ctx: NodeContext,
    clip_vision: Any,
    init_image: ImageBatch,
    vae: Any,
    width: int,
    height: int,
    video_frames: int,
    motion_bucket_id: int,
    fps: int,
    augmentation_level: float,
) -> NodeResult:
    cond = {"text": f"svd:{motion_bucket_id}:{fps}", "clip": clip_vision["name"]}
    return (cond, {"text": "", "clip": clip_vision["name"]}, Latent(width, height, video_frames)), None


async def _sample(ctx: NodeContext, latent: Latent, seed: int, steps: int, positive: dict[str, Any]) -> NodeResult:
    """One tick per step, each with a preview when the prompt asked for them. ComfyUI's ``prepare_callback``
    (latent_preview.py) previews ``x0[0]`` of the latent: for a video that is its first frame (SVD's frames are
    the batch; Wan / LTX latents are 5-D and ``Latent2RGBPreviewer`` takes ``x0[0, :, 0]``, TAEHV ``x0[:1, :, :1]``),
    so a video sampler's previews show frame 1 — here the picture the decoder will draw for every frame."""
    text = str(positive.get("text", ""))
    result = Latent(latent.width, latent.height, latent.batch_size, seed, text)
    bar = ctx.progress(steps)
    for step in range(steps):
        await ctx.step()
        preview = None
        if ctx.previews:
            preview = await ctx.blocking(
                media.picture, max(8, latent.width // 8) * 8, max(8, latent.height // 8) * 8, seed + step, text
            )
        await bar.update_absolute(step + 1, preview=preview)
    return (result,), None


@node("KSampler")
async def ksampler(
    ctx: NodeContext,
    model: Any,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: dict[str, Any],
    negative: Any,
    latent_image: Latent,
    denoise: float = 1.0,
) -> NodeResult:
    return await _sample(ctx, latent_image, seed, steps, positive)


@node("KSamplerAdvanced")
async def ksampler_advanced(
    ctx: NodeContext,
    model: Any,
    add_noise: str,
    noise_seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: dict[str, Any],
    negative: Any,
    latent_image: Latent,
    start_at_step: int,
    end_at_step: int,
    return_with_leftover_noise: str,
) -> NodeResult:
    run = max(1, min(end_at_step, steps) - start_at_step)
    return await _sample(ctx, latent_image, noise_seed, run, positive)


@node("VAEDecode")
async def vae_decode(ctx: NodeContext, samples: Latent, vae: Any) -> NodeResult:
    noise = ctx.run.emu.config.noisy_pictures
    img = await ctx.blocking(media.picture, samples.width, samples.height, samples.seed, samples.text, noise=noise)
    return (ImageBatch([img] * samples.batch_size),), None


@node("VAEEncode")
async def vae_encode(ctx: NodeContext, pixels: ImageBatch, vae: Any) -> NodeResult:
    return (Latent(pixels.width, pixels.height, len(pixels.frames)),), None
