"""Detection: the parameters of a workflow that came without a manifest, found by walking its links.

How it works: the save nodes decide the kind. The main sampler (KSampler, KSamplerAdvanced, SamplerCustom,
SamplerCustomAdvanced; the one whose latent comes from an empty latent, else the first) gives steps, cfg,
denoise, sampler and scheduler, looking through ``guider``, ``sigmas`` and ``sampler`` links for the custom
samplers. Its ``positive`` / ``negative`` links are followed back through conditioning nodes (combine, set area,
ControlNet apply, …: slot 0 follows ``positive``, slot 1 ``negative``) to the text encoders, whose text becomes
``prompt`` / ``negative``; samplers that continue its latent (an SDXL refiner) add their encoders to those, and
their ``steps`` when they count the same steps. Video graphs: the latent's start node (SVD conditioning, Wan /
LTX image-to-video, the empty video latents) gives size, batch and ``frames``; SVD's conditioning, CreateVideo
and the animated savers give ``fps``; SVD's ``motion_bucket_id`` gives ``motion``. ``seed`` binds every seed in
the graph (KSampler ``seed``, ``noise_seed`` on the others and on RandomNoise), width / height / batch the empty
latent, ``image`` the LoadImage node. Bounds are
our policy, narrowed by ``/object_info`` when given; defaults are the values in the file.

Never: bind an input that is a link (it would cut the graph), or invent a parameter it did not find.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from discomfy.workflows.graph import (
    SAVE_NODES,
    class_of,
    inputs_of,
    link_source,
    model_roles,
    nodes_of_class,
    save_nodes,
    upstream,
)
from discomfy.workflows.model import Graph, Kind, Param, ParamType, Target, Workflow, WorkflowError
from discomfy.workflows.objectinfo import NodeSpec, find_input

SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")
#: Text encoders and their prompt inputs.
TEXT_ENCODERS: dict[str, tuple[str, ...]] = {
    "CLIPTextEncode": ("text",),
    "CLIPTextEncodeSDXL": ("text_g", "text_l"),
    "CLIPTextEncodeSDXLRefiner": ("text",),
    "CLIPTextEncodeSD3": ("clip_l", "clip_g", "t5xxl"),
    "CLIPTextEncodeFlux": ("clip_l", "t5xxl"),
}
EMPTY_LATENTS = ("EmptyLatentImage", "EmptySD3LatentImage")
#: Nodes that start a video's latent (core ``comfy_extras``: nodes_wan, nodes_lt, nodes_hunyuan, nodes_mochi,
#: nodes_video_model), and which of their inputs are the frames count and the size: parameter → input.
VIDEO_LATENTS: dict[str, dict[str, str]] = {
    "SVD_img2vid_Conditioning": {"frames": "video_frames"},
    "WanImageToVideo": {"frames": "length", "batch": "batch_size"},
    "Wan22ImageToVideoLatent": {"frames": "length", "batch": "batch_size"},
    "WanFirstLastFrameToVideo": {"frames": "length", "batch": "batch_size"},
    "LTXVImgToVideo": {"frames": "length", "batch": "batch_size"},
    "EmptyLTXVLatentVideo": {"frames": "length", "batch": "batch_size"},
    "EmptyHunyuanLatentVideo": {"frames": "length", "batch": "batch_size"},
    "EmptyMochiLatentVideo": {"frames": "length", "batch": "batch_size"},
    "EmptyCosmosLatentVideo": {"frames": "length", "batch": "batch_size"},
}
#: Inputs that set a video's frame rate: the SVD conditioning (INT) and the savers / CreateVideo (FLOAT).
FPS_INPUTS = {
    "SVD_img2vid_Conditioning": "fps",
    "CreateVideo": "fps",
    "SaveAnimatedWEBP": "fps",
    "SaveAnimatedPNG": "fps",
}
#: Stable Video Diffusion's "how much movement".
MOTION_INPUTS = {"SVD_img2vid_Conditioning": "motion_bucket_id"}
SEED_INPUTS = {"KSampler": "seed", "KSamplerAdvanced": "noise_seed", "SamplerCustom": "noise_seed"}
SEED_NODES = {"RandomNoise": "noise_seed"}

#: Our policy for detected parameters: what a Discord user may ask, before /object_info narrows it.
POLICY: dict[str, tuple[ParamType, float | None, float | None]] = {
    "seed": (ParamType.INT, 0, 2**64 - 1),
    "steps": (ParamType.INT, 1, 150),
    "cfg": (ParamType.FLOAT, 0.0, 30.0),
    "denoise": (ParamType.FLOAT, 0.0, 1.0),
    "width": (ParamType.INT, 64, 2048),
    "height": (ParamType.INT, 64, 2048),
    "batch": (ParamType.INT, 1, 8),
    "frames": (ParamType.INT, 1, 241),
    "fps": (ParamType.INT, 1, 60),
    "motion": (ParamType.INT, 1, 1023),
}


def detect_workflow(
    graph: Graph, name: str, object_info: Mapping[str, NodeSpec] | None = None, *, source: Any = None
) -> Workflow:
    outputs = save_nodes(graph)
    if not outputs:
        raise WorkflowError(
            f"workflow '{name}' has no save node (SaveImage, SaveVideo, SaveAnimatedWEBP, SaveWEBM, "
            "SaveAnimatedPNG), so the bot would get nothing back; add one, or write a manifest naming its outputs."
        )
    finder = _Finder(graph, object_info or {})
    finder.find()
    loaders = nodes_of_class(graph, ["LoadImage"])
    if any(SAVE_NODES[class_of(graph, o)] is Kind.VIDEO for o in outputs):
        kind = Kind.VIDEO
    elif not finder.samplers and loaders:
        kind = Kind.UPSCALE
    else:
        kind = Kind.IMAGE
    return Workflow(
        name=name,
        kind=kind,
        graph=graph,
        params=finder.params,
        outputs=tuple(outputs),
        detected=True,
        source=source,
        model_roles=model_roles(graph),
    )


def number_param(
    graph: Graph, pname: str, targets: list[Target], object_info: Mapping[str, NodeSpec] | None = None
) -> Param | None:
    """The parameter ``pname`` (one of ``POLICY``) on these targets, bounded the way detection bounds it."""
    finder = _Finder(graph, object_info or {})
    finder._number(pname, targets, keep_default=pname != "seed")
    return finder.params.get(pname)


class _Finder:
    def __init__(self, graph: Graph, info: Mapping[str, NodeSpec]) -> None:
        self.graph = graph
        self.info = info
        self.params: dict[str, Param] = {}
        reachable = upstream(graph, save_nodes(graph))
        self.samplers = [s for s in nodes_of_class(graph, SAMPLERS) if s in reachable]

    def find(self) -> None:
        main = self._main_sampler()
        if main is not None:
            self._sampler(main)
        seeds = [Target(s, SEED_INPUTS[c]) for s in self.samplers if (c := class_of(self.graph, s)) in SEED_INPUTS]
        seeds += [Target(n, SEED_NODES[class_of(self.graph, n)]) for n in nodes_of_class(self.graph, SEED_NODES)]
        self._number("seed", seeds, keep_default=False)
        latents = nodes_of_class(self.graph, EMPTY_LATENTS) + nodes_of_class(self.graph, VIDEO_LATENTS)
        if latents:
            node = latents[0]
            own = VIDEO_LATENTS.get(class_of(self.graph, node), {})
            self._number("width", [Target(node, "width")], step=8)
            self._number("height", [Target(node, "height")], step=8)
            self._number("batch", [Target(node, own.get("batch", "batch_size"))])
            if "frames" in own:
                self._number("frames", [Target(node, own["frames"])])
        self._video_rate()
        for index, node in enumerate(nodes_of_class(self.graph, ["LoadImage"])):
            target = Target(node, "image")
            if self._literal(target):
                pname = "image" if index == 0 else f"image_{index + 1}"
                self.params[pname] = Param(pname, ParamType.IMAGE, (target,), required=True)

    def _video_rate(self) -> None:
        """fps on every node that sets the frame rate (INT on SVD's conditioning; the FLOAT inputs of CreateVideo
        and the animated savers are written through ``multiply = 1.0``, as the shipped manifests do), and SVD's
        motion amount."""
        rates = [Target(n, FPS_INPUTS[class_of(self.graph, n)]) for n in nodes_of_class(self.graph, FPS_INPUTS)]
        rates = [
            Target(t.node, t.input, 1.0) if isinstance(inputs_of(self.graph, t.node).get(t.input), float) else t
            for t in rates
        ]
        self._number("fps", rates)
        motions = [Target(n, MOTION_INPUTS[class_of(self.graph, n)]) for n in nodes_of_class(self.graph, MOTION_INPUTS)]
        self._number("motion", motions[:1])

    def _main_sampler(self) -> str | None:
        starts = (*EMPTY_LATENTS, *VIDEO_LATENTS)
        for sampler in self.samplers:
            source = link_source(inputs_of(self.graph, sampler).get("latent_image"))
            if source and any(class_of(self.graph, n) in starts for n in upstream(self.graph, [source[0]])):
                return sampler
        return self.samplers[0] if self.samplers else None

    def _stages_after(self, main: str) -> list[str]:
        """Samplers that continue the main one's latent (an SDXL refiner, a second pass): same prompt, and the
        same schedule when they count the same steps (KSamplerAdvanced's start_at_step / end_at_step split)."""
        return [
            s
            for s in self.samplers
            if s != main
            and (source := link_source(inputs_of(self.graph, s).get("latent_image"))) is not None
            and main in upstream(self.graph, [source[0]])
        ]

    def _sampler(self, node: str) -> None:
        inputs = inputs_of(self.graph, node)
        holders = [node]  # nodes that may carry steps / cfg / denoise / sampler_name / scheduler
        positive, negative = inputs.get("positive"), inputs.get("negative")
        guider = link_source(inputs.get("guider"))
        if guider is not None:
            guide = inputs_of(self.graph, guider[0])
            holders.append(guider[0])
            positive = guide.get("positive", guide.get("conditioning", guide.get("cond1")))
            negative = guide.get("negative")
        for link_name in ("sigmas", "sampler"):
            source = link_source(inputs.get(link_name))
            if source is not None:
                holders.append(source[0])
        later = self._stages_after(node)
        prompts = self._encoders(positive)
        negatives = [t for t in self._encoders(negative) if t not in prompts]
        for stage in later:
            stage_inputs = inputs_of(self.graph, stage)
            prompts += [t for t in self._encoders(stage_inputs.get("positive")) if t not in prompts]
            negatives += [t for t in self._encoders(stage_inputs.get("negative")) if t not in (*prompts, *negatives)]
        if prompts:
            self.params["prompt"] = Param("prompt", ParamType.STR, tuple(prompts), required=True)
        if negatives:
            default = inputs_of(self.graph, negatives[0].node).get(negatives[0].input)
            self.params["negative"] = Param("negative", ParamType.STR, tuple(negatives), default=default)
        for pname, input_name in (("steps", "steps"), ("cfg", "cfg"), ("denoise", "denoise")):
            self._number(pname, self._first(holders, input_name))
        steps = self.params.get("steps")
        if steps is not None and steps.targets[0].node == node:
            same = [Target(s, "steps") for s in later if inputs_of(self.graph, s).get("steps") == steps.default]
            self.params["steps"] = replace(steps, targets=(*steps.targets, *same))
        if "cfg" not in self.params:
            self._number("cfg", self._first(holders, "cfg_conds"))
        for pname, input_name in (("sampler", "sampler_name"), ("scheduler", "scheduler")):
            self._choice(pname, self._first(holders, input_name))

    def _encoders(self, link: object) -> list[Target]:
        """Text inputs of the encoders feeding this conditioning link, through conditioning nodes."""
        found: list[Target] = []
        start = link_source(link)
        todo = [start] if start else []
        seen: set[tuple[str, int]] = set()
        while todo:
            node, slot = todo.pop(0)
            if (node, slot) in seen or node not in self.graph:
                continue
            seen.add((node, slot))
            inputs = inputs_of(self.graph, node)
            names = TEXT_ENCODERS.get(class_of(self.graph, node))
            if names is not None:
                found += [t for t in (Target(node, n) for n in names) if self._text_target(t, found)]
                continue
            if link_source(inputs.get("positive")) and link_source(inputs.get("negative")):
                # ControlNetApplyAdvanced and friends: output 0 is the positive, output 1 the negative.
                branch = inputs["positive"] if slot == 0 else inputs["negative"] if slot == 1 else None
                todo += [s for s in [link_source(branch)] if s]
                continue
            todo += [s for n, v in inputs.items() if "cond" in n and (s := link_source(v))]
        return found

    def _text_target(self, target: Target, found: list[Target]) -> bool:
        return target not in found and isinstance(inputs_of(self.graph, target.node).get(target.input), str)

    def _literal(self, target: Target) -> bool:
        value = inputs_of(self.graph, target.node).get(target.input)
        return value is not None and link_source(value) is None

    def _first(self, holders: list[str], input_name: str) -> list[Target]:
        for node in holders:
            if self._literal(Target(node, input_name)):
                return [Target(node, input_name)]
        return []

    def _spec_bounds(self, target: Target) -> tuple[float | None, float | None, tuple[Any, ...] | None]:
        node_spec = self.info.get(class_of(self.graph, target.node))
        spec = find_input(node_spec, inputs_of(self.graph, target.node), target.input) if node_spec else None
        return (spec.minimum, spec.maximum, spec.choices) if spec else (None, None, None)

    def _number(
        self,
        pname: str,
        targets: list[Target],
        *,
        step: int | None = None,
        keep_default: bool = True,
    ) -> None:
        targets = [t for t in targets if self._literal(t)]
        if not targets:
            return
        ptype, low, high = POLICY[pname]
        info_low, info_high, _ = self._spec_bounds(targets[0])
        low = info_low if low is None or (info_low is not None and info_low > low) else low
        high = info_high if high is None or (info_high is not None and info_high < high) else high
        value = inputs_of(self.graph, targets[0].node).get(targets[0].input)
        default = value if keep_default and isinstance(value, int | float) and not isinstance(value, bool) else None
        if default is not None:  # the file's own value is always allowed
            default = int(default) if ptype is ParamType.INT else float(default)
            low = default if low is not None and default < low else low
            high = default if high is not None and default > high else high
        step = step if step and (low is None or int(low) % step == 0) else None
        self.params[pname] = Param(pname, ptype, tuple(targets), default, low, high, step)

    def _choice(self, pname: str, targets: list[Target]) -> None:
        # Without /object_info the valid names are unknown: leave these to the file.
        choices = self._spec_bounds(targets[0])[2] if targets else None
        value = inputs_of(self.graph, targets[0].node).get(targets[0].input) if targets else None
        if choices and value in choices:
            names = tuple(str(c) for c in choices)
            self.params[pname] = Param(pname, ParamType.CHOICE, tuple(targets), value, choices=names)
