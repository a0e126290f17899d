"""The emulator's node catalogue, in the shape of ComfyUI 0.33's ``GET /object_info``.

Each entry is written by hand from ComfyUI's own node definitions (``nodes.py``, ``comfy_extras/nodes_*.py`` at
commit 783545f6): input names, types, option dicts (default/min/max/step), combo lists, return types and names,
category and the output-node flag. ``SaveImage`` is byte-for-byte the recorded answer in ``misc.jsonl``. Model
combos (``ckpt_name``, ``model_name``) and ``LoadImage.image`` are filled in per request from the emulator's
model lists and input folder, as ComfyUI does (``folder_paths.get_filename_list``).

ComfyUI's v3 ``DynamicCombo`` inputs (``SaveVideo.format``, ``ColorTransfer.source_stats``) are flattened the way
the API format submits them: the combo itself plus its ``"<name>.<sub>"`` inputs as optional.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

MAX_RESOLUTION = 16384
UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
SAMPLERS = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "exp_heun_2_x0",
    "exp_heun_2_x0_sde", "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde",
    "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm",
    "lcm", "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2",
    "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2",
]  # fmt: skip
SCHEDULERS = [
    "simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal", "linear_quadratic",
    "kl_optimal",
]  # fmt: skip
SAVE_PREFIX_TOOLTIP = (
    "The prefix for the file to save. This may include formatting information such as %date:yyyy-MM-dd% or "
    "%Empty Latent Image.width% to include values from nodes."
)
SEED_MAX = 0xFFFFFFFFFFFFFFFF

Input = tuple[str, Any, dict[str, Any]]


def _int(name: str, default: int, lo: int, hi: int, step: int | None = None, **extra: Any) -> Input:
    opts: dict[str, Any] = {"default": default, "min": lo, "max": hi}
    if step is not None:
        opts["step"] = step
    return (name, "INT", {**opts, **extra})


def _float(name: str, default: float, lo: float, hi: float, step: float, **extra: Any) -> Input:
    return (name, "FLOAT", {"default": default, "min": lo, "max": hi, "step": step, **extra})


def _link(name: str, io_type: str, **extra: Any) -> Input:
    return (name, io_type, dict(extra))


def _combo(name: str, options: list[Any] | str, **extra: Any) -> Input:
    # A str names a dynamic list (models, input files) resolved per request.
    return (name, options, dict(extra))


def _node(
    name: str,
    display_name: str,
    category: str,
    required: list[Input],
    outputs: list[str],
    *,
    output_names: list[str] | None = None,
    optional: list[Input] | None = None,
    hidden: dict[str, str] | None = None,
    output_node: bool = False,
    description: str = "",
    python_module: str = "nodes",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "extra": extra,
        "name": name,
        "display_name": display_name,
        "category": category,
        "required": required,
        "optional": optional or [],
        "hidden": hidden or {},
        "output": outputs,
        "output_name": output_names or list(outputs),
        "output_node": output_node,
        "description": description,
        "python_module": python_module,
    }


_PNG_HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
_IMG = "comfy_extras.nodes_images"
_VID = "comfy_extras.nodes_video"

NODE_SPECS: dict[str, dict[str, Any]] = {
    spec["name"]: spec
    for spec in [
        _node("EmptyImage", "EmptyImage", "image", [
            _int("width", 512, 1, MAX_RESOLUTION, 1), _int("height", 512, 1, MAX_RESOLUTION, 1),
            _int("batch_size", 1, 1, 4096), _int("color", 0, 0, 0xFFFFFF, 1, display="color"),
        ], ["IMAGE"]),
        _node("GetImageSize", "Get Image Size", "image", [_link("image", "IMAGE")], ["INT", "INT", "INT"],
              output_names=["width", "height", "batch_size"], python_module=_IMG,
              description="Returns width and height of the image, and passes it through unchanged."),
        _node("ImageBlur", "Blur Image", "image/filters", [
            _link("image", "IMAGE"), _int("blur_radius", 1, 1, 31, 1), _float("sigma", 1.0, 0.1, 10.0, 0.1),
        ], ["IMAGE"], python_module="comfy_extras.nodes_post_processing"),
        _node("ImageInvert", "Invert Image", "image/color", [_link("image", "IMAGE")], ["IMAGE"]),
        _node("ImageScale", "Upscale Image", "image/upscaling", [
            _link("image", "IMAGE"), _combo("upscale_method", UPSCALE_METHODS),
            _int("width", 512, 0, MAX_RESOLUTION, 1), _int("height", 512, 0, MAX_RESOLUTION, 1),
            _combo("crop", ["disabled", "center"]),
        ], ["IMAGE"]),
        _node("ImageScaleBy", "Upscale Image By", "image/upscaling", [
            _link("image", "IMAGE"), _combo("upscale_method", UPSCALE_METHODS),
            _float("scale_by", 1.0, 0.01, 8.0, 0.01),
        ], ["IMAGE"]),
        _node("SaveImage", "Save Image", "image", [
            _link("images", "IMAGE", tooltip="The images to save."),
            ("filename_prefix", "STRING", {"default": "ComfyUI", "tooltip": SAVE_PREFIX_TOOLTIP}),
        ], ["IMAGE"], output_names=["images"], hidden=_PNG_HIDDEN, output_node=True,
            description="Saves the input images to your ComfyUI output directory.",
            search_aliases=["save", "save image", "export image", "output image", "write image", "download"],
            essentials_category="Basics"),
        _node("PreviewImage", "Preview Image", "image", [_link("images", "IMAGE")], ["IMAGE"],
              output_names=["images"], hidden=_PNG_HIDDEN, output_node=True,
              description="Preview the images without saving them to the ComfyUI output directory."),
        _node("LoadImage", "Load Image", "image", [_combo("image", "@input", image_upload=True)],
              ["IMAGE", "MASK"]),
        _node("ColorTransfer", "Transfer Color", "image/filters", [
            _link("image_target", "IMAGE", tooltip="Image(s) to apply the color transform to."),
            _link("image_ref", "IMAGE", tooltip="Reference image(s) to match colors to."),
            _combo("method", ["reinhard_lab", "mkl_lab", "histogram"]),
            _combo("source_stats", ["per_frame", "uniform", "target_frame"]),
            _float("strength", 1.0, 0.0, 10.0, 0.01),
        ], ["IMAGE"], output_names=["image"], optional=[_int("source_stats.target_index", 0, 0, 10000)],
            python_module="comfy_extras.nodes_post_processing",
            description="Match the colors of one image to another using various algorithms."),
        # comfy_extras/nodes_frame_interpolation.py (v3 schema; shapes as in object_info_frames.json, captured)
        _node("FrameInterpolationModelLoader", "Load Frame Interpolation Model", "model/loaders", [
            _combo("model_name", "@frame_interpolation", tooltip=(
                "Select a frame interpolation model to load. Models must be placed in the 'frame_interpolation' "
                "folder.")),
        ], ["INTERP_MODEL"], python_module="comfy_extras.nodes_frame_interpolation"),
        _node("FrameInterpolate", "Run Frame Interpolation Model", "video", [
            _link("interp_model", "INTERP_MODEL"), _link("images", "IMAGE"), _int("multiplier", 2, 2, 16),
        ], ["IMAGE"], python_module="comfy_extras.nodes_frame_interpolation",
            search_aliases=["rife", "film", "frame interpolation", "slow motion", "interpolate frames", "vfi"]),
        _node("CheckpointLoaderSimple", "Load Checkpoint", "model/loaders", [
            _combo("ckpt_name", "@checkpoints", tooltip="The name of the checkpoint (model) to load."),
        ], ["MODEL", "CLIP", "VAE"],
            description="Loads a diffusion model checkpoint, diffusion models are used to denoise latents."),
        _node("ImageOnlyCheckpointLoader", "Image Only Checkpoint Loader (img2vid model)", "model/loaders",
              [_combo("ckpt_name", "@checkpoints")], ["MODEL", "CLIP_VISION", "VAE"],
              python_module="comfy_extras.nodes_video_model"),
        _node("CLIPTextEncode", "CLIP Text Encode (Prompt)", "model/conditioning", [
            ("text", "STRING", {"multiline": True, "dynamicPrompts": True, "tooltip": "The text to be encoded."}),
            _link("clip", "CLIP", tooltip="The CLIP model used for encoding the text."),
        ], ["CONDITIONING"]),
        _node("EmptyLatentImage", "Empty Latent Image", "model/latent", [
            _int("width", 512, 16, MAX_RESOLUTION, 8), _int("height", 512, 16, MAX_RESOLUTION, 8),
            _int("batch_size", 1, 1, 4096),
        ], ["LATENT"]),
        _node("KSampler", "KSampler", "model/sampling", [
            _link("model", "MODEL"), _int("seed", 0, 0, SEED_MAX, control_after_generate=True),
            _int("steps", 20, 1, 10000), _float("cfg", 8.0, 0.0, 100.0, 0.1, round=0.01),
            _combo("sampler_name", SAMPLERS), _combo("scheduler", SCHEDULERS),
            _link("positive", "CONDITIONING"), _link("negative", "CONDITIONING"),
            _link("latent_image", "LATENT"), _float("denoise", 1.0, 0.0, 1.0, 0.01),
        ], ["LATENT"]),
        _node("KSamplerAdvanced", "KSampler (Advanced)", "model/sampling", [
            _link("model", "MODEL"), _combo("add_noise", ["enable", "disable"], advanced=True),
            _int("noise_seed", 0, 0, SEED_MAX, control_after_generate=True), _int("steps", 20, 1, 10000),
            _float("cfg", 8.0, 0.0, 100.0, 0.1, round=0.01), _combo("sampler_name", SAMPLERS),
            _combo("scheduler", SCHEDULERS), _link("positive", "CONDITIONING"), _link("negative", "CONDITIONING"),
            _link("latent_image", "LATENT"), _int("start_at_step", 0, 0, 10000, advanced=True),
            _int("end_at_step", 10000, 0, 10000, advanced=True),
            _combo("return_with_leftover_noise", ["disable", "enable"], advanced=True),
        ], ["LATENT"]),
        _node("VAEDecode", "VAE Decode", "model/latent",
              [_link("samples", "LATENT"), _link("vae", "VAE")], ["IMAGE"]),
        _node("VAEEncode", "VAE Encode", "model/latent", [_link("pixels", "IMAGE"), _link("vae", "VAE")],
              ["LATENT"]),
        _node("UpscaleModelLoader", "Load Upscale Model", "model/loaders",
              [_combo("model_name", "@upscale_models")], ["UPSCALE_MODEL"],
              python_module="comfy_extras.nodes_upscale_model"),
        _node("ImageUpscaleWithModel", "Upscale Image (using Model)", "image/upscaling",
              [_link("upscale_model", "UPSCALE_MODEL"), _link("image", "IMAGE")], ["IMAGE"],
              python_module="comfy_extras.nodes_upscale_model"),
        _node("SVD_img2vid_Conditioning", "SVD_img2vid_Conditioning", "model/conditioning/stable video", [
            _link("clip_vision", "CLIP_VISION"), _link("init_image", "IMAGE"), _link("vae", "VAE"),
            _int("width", 1024, 16, MAX_RESOLUTION, 8), _int("height", 576, 16, MAX_RESOLUTION, 8),
            _int("video_frames", 14, 1, 4096), _int("motion_bucket_id", 127, 1, 1023, advanced=True),
            _int("fps", 6, 1, 1024), _float("augmentation_level", 0.0, 0.0, 10.0, 0.01, advanced=True),
        ], ["CONDITIONING", "CONDITIONING", "LATENT"], output_names=["positive", "negative", "latent"],
            python_module="comfy_extras.nodes_video_model"),
        _node("VideoLinearCFGGuidance", "VideoLinearCFGGuidance", "model/sampling/guiders",
              [_link("model", "MODEL"), _float("min_cfg", 1.0, 0.0, 100.0, 0.5, round=0.01, advanced=True)],
              ["MODEL"], python_module="comfy_extras.nodes_video_model"),
        _node("CreateVideo", "Create Video", "video",
              [_link("images", "IMAGE"), _float("fps", 30.0, 1.0, 120.0, 1.0)], ["VIDEO"],
              optional=[_link("audio", "AUDIO"), _int("bit_depth", 8, 8, 10, 2)], python_module=_VID,
              description="Create a video from images."),
        _node("SaveVideo", "Save Video", "video", [
            _link("video", "VIDEO", tooltip="The video to save."),
            ("filename_prefix", "STRING", {"default": "video/ComfyUI", "tooltip": SAVE_PREFIX_TOOLTIP}),
            _combo("format", ["auto", "mp4", "mkv", "webm"]),
        ], ["VIDEO"], optional=[_combo("format.codec", ["auto", "h264", "av1"])], hidden=_PNG_HIDDEN,
            output_node=True, python_module=_VID,
            description="Saves the input videos to your ComfyUI output directory."),
        _node("SaveWEBM", "Save WEBM", "video", [
            _link("images", "IMAGE"), ("filename_prefix", "STRING", {"default": "ComfyUI"}),
            _combo("codec", ["vp9", "av1"]), _float("fps", 24.0, 0.01, 1000.0, 0.01),
            _float("crf", 32.0, 0, 63.0, 1),
        ], ["IMAGE"], output_names=["images"], hidden=_PNG_HIDDEN, output_node=True, python_module=_VID),
        _node("SaveAnimatedWEBP", "Save Animated WEBP", "image", [
            _link("images", "IMAGE"), ("filename_prefix", "STRING", {"default": "ComfyUI"}),
            _float("fps", 6.0, 0.01, 1000.0, 0.01), ("lossless", "BOOLEAN", {"default": True}),
            _int("quality", 80, 0, 100), _combo("method", ["default", "fastest", "slowest"]),
        ], ["IMAGE"], output_names=["images"], hidden=_PNG_HIDDEN, output_node=True, python_module=_IMG),
        _node("SaveAnimatedPNG", "Save Animated PNG", "image", [
            _link("images", "IMAGE"), ("filename_prefix", "STRING", {"default": "ComfyUI"}),
            _float("fps", 6.0, 0.01, 1000.0, 0.01), _int("compress_level", 4, 0, 9, advanced=True),
        ], ["IMAGE"], output_names=["images"], hidden=_PNG_HIDDEN, output_node=True, python_module=_IMG),
    ]
}  # fmt: skip

LINK_TYPES = {
    "IMAGE", "MASK", "LATENT", "MODEL", "CLIP", "VAE", "CONDITIONING", "CLIP_VISION", "UPSCALE_MODEL", "VIDEO",
    "AUDIO", "INTERP_MODEL",
}  # fmt: skip


def is_output_node(class_type: str) -> bool:
    return bool(NODE_SPECS[class_type]["output_node"])


def resolve_options(options: Any, lists: Callable[[str], list[str]]) -> Any:
    """A combo's option list, with ``"@folder"`` placeholders replaced by the current file list."""
    if isinstance(options, str) and options.startswith("@"):
        return lists(options[1:])
    return options


def input_spec(class_type: str, lists: Callable[[str], list[str]]) -> dict[str, dict[str, tuple[Any, dict[str, Any]]]]:
    """``{"required": {name: (type_or_list, opts)}, "optional": {...}}`` for validation."""
    spec = NODE_SPECS[class_type]
    out: dict[str, dict[str, tuple[Any, dict[str, Any]]]] = {}
    for category in ("required", "optional"):
        out[category] = {
            name: (resolve_options(kind, lists), copy.deepcopy(opts)) for name, kind, opts in spec[category]
        }
    return out


def object_info_entry(class_type: str, lists: Callable[[str], list[str]]) -> dict[str, Any]:
    """One node's ``/object_info`` entry, in ComfyUI's field order."""
    spec = NODE_SPECS[class_type]
    inputs: dict[str, Any] = {}
    order: dict[str, list[str]] = {}
    for category in ("required", "optional"):
        if spec[category]:
            inputs[category] = {}
            for name, kind, opts in spec[category]:
                resolved = resolve_options(kind, lists)
                inputs[category][name] = [resolved, opts] if opts or isinstance(resolved, list) else [resolved]
            order[category] = [name for name, _, _ in spec[category]]
    if spec["hidden"]:
        inputs["hidden"] = dict(spec["hidden"])
        order["hidden"] = list(spec["hidden"])
    return {
        "input": inputs,
        "input_order": order,
        "is_input_list": False,
        "output": list(spec["output"]),
        "output_is_list": [False] * len(spec["output"]),
        "output_name": list(spec["output_name"]),
        "name": class_type,
        "display_name": spec["display_name"],
        "description": spec["description"],
        "python_module": spec["python_module"],
        "category": spec["category"],
        "output_node": spec["output_node"],
        "has_intermediate_output": False,
        **copy.deepcopy(spec["extra"]),
    }
