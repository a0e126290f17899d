"""The words of /workflow: what came from an uploaded file is escaped and bounded; Discord's limits hold."""

from __future__ import annotations

from typing import Any

from discomfy.bot.render_workflows import MAX_OPTIONS, draft_embed, info_embed, input_options, node_options
from discomfy.workflows import Graph, detect_workflow
from discomfy.workflows.uploads import Draft


def node(class_type: str, title: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs, "_meta": {"title": title}}


def hostile_graph() -> Graph:
    return {
        "1": node("CheckpointLoaderSimple", "**bold** @everyone <@123>", ckpt_name="m`x`.safetensors"),
        "2": node("CLIPTextEncode", "`code` [link](http://x)", text="a", clip=["1", 1]),
        "3": node("EmptyLatentImage", "x" * 500, width=512, height=512, batch_size=1),
        "4": node(
            "KSampler",
            "s",
            seed=1,
            steps=20,
            cfg=7,
            model=["1", 0],
            positive=["2", 0],
            negative=["2", 0],
            latent_image=["3", 0],
            sampler_name="euler",
            scheduler="normal",
            denoise=1,
        ),
        "5": node("VAEDecode", "d", samples=["4", 0], vae=["1", 2]),
        "6": node("SaveImage", "save", images=["5", 0], filename_prefix="p"),
    }


def test_node_titles_from_the_file_are_escaped_in_the_summary() -> None:
    workflow = detect_workflow(hostile_graph(), "w")
    embed = draft_embed(Draft("id", 1, 2, workflow, 0.0), ["http://comfy"])
    text = embed["description"]
    assert "@everyone" not in text and "<@123>" not in text and "**bold**" not in text
    assert "\\`code\\`" in text and len(text) <= 4096


def test_select_options_stay_within_discords_limits() -> None:
    graph = hostile_graph()
    graph.update({str(n): node("EmptyLatentImage", "t" * 300, width=8, height=8, batch_size=1) for n in range(10, 60)})
    workflow = detect_workflow(graph, "w")
    options = node_options(workflow, sorted(graph))
    assert len(options) == MAX_OPTIONS
    assert all(1 <= len(label) <= 100 and len(value) <= 100 and len(text) <= 100 for label, value, text in options)
    inputs = input_options(workflow, "3", ["width", "height"])
    assert inputs == [("width", "width", "now 512"), ("height", "height", "now 512")]


def test_model_names_are_code_spans_that_cannot_be_closed() -> None:
    workflow = detect_workflow(hostile_graph(), "w")
    embed = info_embed(workflow, ["m`x`.safetensors"], [], [], uploaded=True)
    assert embed["fields"][1]["value"] == "`m'x'.safetensors`"
