"""LTX-Video's nodes for the emulator (``workflows/img2vid_ltxv.json`` runs end to end): CLIPLoader,
LTXVPreprocess, LTXVImgToVideo, LTXVConditioning, KSamplerSelect, LTXVScheduler, SamplerCustom.

Their ``/object_info`` entries follow the real ComfyUI 0.33 answer recorded in
``tests/workflows/object_info_video_033.json`` (input names, types, option dicts, return types and names,
category, module); ``CLIPLoader.clip_name`` lists the emulator's ``text_encoders`` folder, as ComfyUI's
``folder_paths`` does. Behaviour, from ``comfy_extras/nodes_lt.py`` and ``nodes_custom_sampler.py``:
LTXVImgToVideo makes a latent of ``length`` frames at ``width`` × ``height``; LTXVScheduler makes ``steps`` + 1
sigmas, and SamplerCustom runs one sampler step per sigma interval (``len(sigmas) - 1``), with step progress like
KSampler. Importing this module registers them (``executor.py`` does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .media import ImageBatch, Latent
from .nodes import NodeResult, _load, _sample, node
from .object_info import NODE_SPECS, SAMPLERS, SEED_MAX, _combo, _float, _int, _link, _node

if TYPE_CHECKING:
    from .executor import NodeContext

_LT = "comfy_extras.nodes_lt"
_CUSTOM = "comfy_extras.nodes_custom_sampler"
#: ``CLIPLoader.type`` in ComfyUI 0.33 (the recorded answer), in its order.
CLIP_TYPES = [
    "stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv", "pixart", "cosmos", "lumina2",
    "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image", "hunyuan_image", "flux2", "ovis", "longcat_image",
    "cogvideox", "lens", "pixeldit", "ideogram4", "boogu", "krea2", "joyimage", "mage", "minimax",
]  # fmt: skip

NODE_SPECS.update(
    {
        spec["name"]: spec
        for spec in [
            _node("CLIPLoader", "Load CLIP", "model/loaders", [
                _combo("clip_name", "@text_encoders"), _combo("type", CLIP_TYPES),
            ], ["CLIP"], optional=[_combo("device", ["default", "cpu"], advanced=True)]),
            _node("LTXVPreprocess", "LTXV Preprocess", "video/preprocessors", [
                _link("image", "IMAGE"),
                _int("img_compression", 35, 0, 100, tooltip="Amount of compression to apply on image."),
            ], ["IMAGE"], output_names=["output_image"], python_module=_LT),
            _node("LTXVImgToVideo", "LTXVImgToVideo", "model/conditioning/ltxv", [
                _link("positive", "CONDITIONING"), _link("negative", "CONDITIONING"), _link("vae", "VAE"),
                _link("image", "IMAGE"), _int("width", 768, 64, 16384, 32), _int("height", 512, 64, 16384, 32),
                _int("length", 97, 9, 16384, 8), _int("batch_size", 1, 1, 4096),
                ("strength", "FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0}),
            ], ["CONDITIONING", "CONDITIONING", "LATENT"], output_names=["positive", "negative", "latent"],
                  python_module=_LT),
            _node("LTXVConditioning", "LTXVConditioning", "model/conditioning/ltxv", [
                _link("positive", "CONDITIONING"), _link("negative", "CONDITIONING"),
                _float("frame_rate", 25.0, 0.0, 1000.0, 0.01),
            ], ["CONDITIONING", "CONDITIONING"], output_names=["positive", "negative"], python_module=_LT),
            _node("KSamplerSelect", "KSamplerSelect", "model/sampling/samplers", [
                _combo("sampler_name", SAMPLERS),
            ], ["SAMPLER"], python_module=_CUSTOM),
            _node("LTXVScheduler", "LTXVScheduler", "model/sampling/schedulers", [
                _int("steps", 20, 1, 10000), _float("max_shift", 2.05, 0.0, 100.0, 0.01),
                _float("base_shift", 0.95, 0.0, 100.0, 0.01),
                ("stretch", "BOOLEAN", {"default": True, "advanced": True}),
                _float("terminal", 0.1, 0.0, 0.99, 0.01, advanced=True),
            ], ["SIGMAS"], optional=[_link("latent", "LATENT")], python_module=_LT),
            _node("SamplerCustom", "SamplerCustom", "model/sampling/custom", [
                _link("model", "MODEL"), ("add_noise", "BOOLEAN", {"default": True, "advanced": True}),
                _int("noise_seed", 0, 0, SEED_MAX, control_after_generate=True),
                ("cfg", "FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}),
                _link("positive", "CONDITIONING"), _link("negative", "CONDITIONING"), _link("sampler", "SAMPLER"),
                _link("sigmas", "SIGMAS"), _link("latent_image", "LATENT"),
            ], ["LATENT", "LATENT"], output_names=["output", "denoised_output"], python_module=_CUSTOM),
        ]
    }
)  # fmt: skip


@node("CLIPLoader")
async def clip_loader(ctx: NodeContext, clip_name: str, type: str, device: str = "default") -> NodeResult:
    clip = await _load(ctx, "text_encoders", clip_name)
    return ({**clip, "kind": "CLIP", "type": type},), None


@node("LTXVPreprocess")
async def ltxv_preprocess(ctx: NodeContext, image: ImageBatch, img_compression: int) -> NodeResult:
    return (image,), None


@node("LTXVImgToVideo")
async def ltxv_img_to_video(
    ctx: NodeContext,
    positive: dict[str, Any],
    negative: dict[str, Any],
    vae: Any,
    image: ImageBatch,
    width: int,
    height: int,
    length: int,
    batch_size: int,
    strength: float,
) -> NodeResult:
    return (positive, negative, Latent(width, height, length)), None


@node("LTXVConditioning")
async def ltxv_conditioning(
    ctx: NodeContext, positive: dict[str, Any], negative: dict[str, Any], frame_rate: float
) -> NodeResult:
    return (positive, negative), None


@node("KSamplerSelect")
async def ksampler_select(ctx: NodeContext, sampler_name: str) -> NodeResult:
    return ({"sampler": sampler_name},), None


@node("LTXVScheduler")
async def ltxv_scheduler(ctx: NodeContext, steps: int, latent: Latent | None = None, **_: Any) -> NodeResult:
    return ({"sigmas": steps + 1},), None


@node("SamplerCustom")
async def sampler_custom(
    ctx: NodeContext,
    model: Any,
    add_noise: bool,
    noise_seed: int,
    cfg: float,
    positive: dict[str, Any],
    negative: Any,
    sampler: Any,
    sigmas: dict[str, int],
    latent_image: Latent,
) -> NodeResult:
    (result,), _ = await _sample(ctx, latent_image, noise_seed, max(1, sigmas["sigmas"] - 1), positive)
    return (result, result), None
