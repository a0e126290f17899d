"""Workflows added from Discord: names, the allow-list, reading an upload, drafts, rebinding, our manifest, files."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from discomfy.errors import BadInputError, PermissionDeniedError, UserError
from discomfy.workflows import Graph, Kind, Target, detect_workflow, load_workflows, parse_api_graph, parse_manifest
from discomfy.workflows.upload_files import UploadFolder
from discomfy.workflows.uploads import (
    DENIED_NODES,
    Draft,
    Drafts,
    UploadRules,
    allowed_nodes,
    bindable_nodes,
    built_in_nodes,
    check_name,
    manifest_text,
    read_upload,
    rebind,
    with_kind,
)

from .conftest import SHIPPED, SHIPPED_NAMES

COMMUNITY = Path(__file__).resolve().parent / "community"
SD15 = (COMMUNITY / "sd15_txt2img.json").read_bytes()
CORE = ("KSampler", "CheckpointLoaderSimple", "EmptyLatentImage", "CLIPTextEncode", "VAEDecode", "SaveImage")
RULES = UploadRules(max_bytes=64 * 1024, max_nodes=20, allowed=frozenset(CORE))


def graph_of(data: bytes) -> Graph:
    return parse_api_graph(json.loads(data), "w")


def refusal(data: bytes | str, rules: UploadRules = RULES) -> str:
    with pytest.raises(BadInputError) as caught:
        read_upload(data.encode() if isinstance(data, str) else data, "w", rules)
    return caught.value.user_message


# -- names ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sdxl_refiner", "a", "wan-2", "x" * 32])
def test_a_plain_name_is_kept(name: str) -> None:
    assert check_name(f" {name} ") == name


@pytest.mark.parametrize("name", ["../x", "..", "a/b", "a.b", "Big", "", "x" * 33, "a b", "/etc", "nul\x00"])
def test_a_name_that_could_be_a_path_or_is_not_plain_is_refused(name: str) -> None:
    with pytest.raises(BadInputError, match="1 to 32 lowercase"):
        check_name(name)


# -- the allow-list -------------------------------------------------------------------------------------------


def info(**modules: str) -> dict[str, Any]:
    return {name: {"python_module": module, "input": {}} for name, module in modules.items()}


def test_built_in_nodes_are_the_core_and_comfy_extras_by_python_module() -> None:
    server = info(
        KSampler="nodes",
        CreateVideo="comfy_extras.nodes_video",
        IPAdapter="custom_nodes.ComfyUI_IPAdapter_plus",
        OpenAIDalle3="comfy_api_nodes.nodes_openai",
        Odd="",
    )
    assert built_in_nodes(server) == {"KSampler", "CreateVideo"}


def test_denied_built_ins_are_left_out_and_extra_nodes_are_added() -> None:
    server = info(CheckpointSave="comfy_extras.nodes_model_merging", SaveLatent="nodes", LoadLatent="nodes")
    assert built_in_nodes(server) == frozenset()
    assert {"CheckpointSave", "SaveLatent", "LoadLatent", "ModelSave", "LoraSave"} <= set(DENIED_NODES)
    assert allowed_nodes([server, info(KSampler="nodes")], ["IPAdapter"]) == {"KSampler", "IPAdapter"}


def test_an_entry_without_python_module_is_not_built_in() -> None:
    assert built_in_nodes({"KSampler": {"input": {}}, "Bad": "x"}) == frozenset()


# -- reading an upload ----------------------------------------------------------------------------------------


def test_an_api_export_is_read() -> None:
    assert sorted(read_upload(SD15, "w", RULES)) == ["3", "4", "5", "6", "7", "8", "9"]


def test_invalid_json_says_where() -> None:
    assert "not valid JSON (line 1, column 2" in refusal("{x")


def test_a_huge_number_or_deep_nesting_is_refused_plainly() -> None:
    assert "too large" in refusal('{"1": ' + "9" * 5000 + "}")
    assert "nests too deeply" in refusal("[" * 60_000)


def test_not_utf8_is_refused() -> None:
    assert "not text" in refusal(b"\xff\xfe\x00")


@pytest.mark.parametrize(("text", "kind"), [("[1, 2]", "list"), ('"x"', "str"), ("3", "int")])
def test_json_that_is_not_an_object_is_refused(text: str, kind: str) -> None:
    assert f"JSON {kind}, not a workflow" in refusal(text)


def test_a_ui_format_export_explains_the_api_export() -> None:
    ui = {"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": [[1, 4, 0, 3, 0, "MODEL"]]}
    message = refusal(json.dumps(ui))
    assert "UI format" in message and "Workflow → Export (API)" in message


def test_a_file_over_the_size_limit_is_refused() -> None:
    assert "over 1 KiB" in refusal(SD15, UploadRules(1024, 20, RULES.allowed))


def test_too_many_nodes_are_refused() -> None:
    assert "7 nodes; an upload may have at most 6" in refusal(SD15, UploadRules(1 << 20, 6, RULES.allowed))


def test_a_node_outside_the_allow_list_is_refused_with_how_to_allow_it() -> None:
    graph = graph_of(SD15)
    graph["10"] = {"class_type": "IPAdapterAdvanced", "inputs": {"weight": 1.0}}
    message = refusal(json.dumps(graph))
    assert "`IPAdapterAdvanced`" in message and "extra_nodes" in message


def test_a_denied_node_is_refused_with_the_reason_even_if_listed() -> None:
    graph = graph_of(SD15)
    graph["10"] = {"class_type": "CheckpointSave", "inputs": {"filename_prefix": "x", "model": ["4", 0]}}
    rules = UploadRules(1 << 20, 20, RULES.allowed | {"CheckpointSave"})
    assert "writes a checkpoint file" in refusal(json.dumps(graph), rules)


@pytest.mark.parametrize(
    "value", ["../../secrets.txt", "/etc/passwd", "C:\\Windows\\x.png", "models/../../x", "~/.ssh/id_rsa", ".."]
)
def test_a_string_that_looks_like_a_path_is_refused(value: str) -> None:
    graph = graph_of(SD15)
    graph["9"]["inputs"]["filename_prefix"] = value
    assert "looks like a path" in refusal(json.dumps(graph))


@pytest.mark.parametrize("value", ["wait... what?", "a cat/dog hybrid", "video/ComfyUI", "1/2 moon"])
def test_ordinary_text_with_dots_and_slashes_is_not_a_path(value: str) -> None:
    graph = graph_of(SD15)
    graph["6"]["inputs"]["text"] = value
    assert read_upload(json.dumps(graph).encode(), "w", RULES)["6"]["inputs"]["text"] == value


def test_a_link_to_a_missing_node_is_refused() -> None:
    graph = graph_of(SD15)
    graph["9"]["inputs"]["images"] = ["99", 0]
    assert "links to node 99" in refusal(json.dumps(graph))


def test_an_overlong_node_id_is_refused() -> None:
    graph = graph_of(SD15)
    graph["x" * 65] = graph.pop("9")
    assert "longer than 64" in refusal(json.dumps(graph))


# -- kind -----------------------------------------------------------------------------------------------------


def test_a_picture_workflow_cannot_be_declared_video() -> None:
    workflow = detect_workflow(graph_of(SD15), "w")
    with pytest.raises(BadInputError, match="saves pictures"):
        with_kind(workflow, Kind.VIDEO)


def test_an_upscale_workflow_needs_a_load_image() -> None:
    with pytest.raises(BadInputError, match="LoadImage"):
        with_kind(detect_workflow(graph_of(SD15), "w"), Kind.UPSCALE)


# -- drafts ---------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def draft(drafts: Drafts, owner: int = 1, guild: int = 10, at: float = 1000.0) -> Draft:
    made = Draft(drafts.new_id(), owner, guild, detect_workflow(graph_of(SD15), "w"), at)
    drafts.add(made)
    return made


def test_only_the_uploader_in_its_guild_gets_the_draft() -> None:
    drafts = Drafts(clock=Clock())
    made = draft(drafts)
    assert drafts.get(made.id, 1, 10) is made
    with pytest.raises(PermissionDeniedError, match="Only the admin who uploaded"):
        drafts.get(made.id, 2, 10)
    with pytest.raises(PermissionDeniedError):
        drafts.get(made.id, 1, 11)


def test_a_new_upload_replaces_the_admins_pending_one() -> None:
    drafts = Drafts(clock=Clock())
    first, second = draft(drafts), draft(drafts)
    other = draft(drafts, owner=2)
    assert len(drafts) == 2
    with pytest.raises(UserError, match="expired or was already handled"):
        drafts.get(first.id, 1, 10)
    assert drafts.get(second.id, 1, 10) is second and drafts.get(other.id, 2, 10) is other


def test_a_draft_expires() -> None:
    clock = Clock()
    drafts = Drafts(ttl=60, clock=clock)
    made = draft(drafts)
    clock.now += 61
    with pytest.raises(UserError, match="expired"):
        drafts.get(made.id, 1, 10)
    assert len(drafts) == 0


def test_pending_drafts_are_bounded() -> None:
    drafts = Drafts(limit=2, clock=Clock())
    draft(drafts, owner=1)
    draft(drafts, owner=2)
    with pytest.raises(UserError, match="Too many"):
        draft(drafts, owner=3)


def test_a_popped_draft_cannot_be_confirmed_twice() -> None:
    drafts = Drafts(clock=Clock())
    made = draft(drafts)
    drafts.pop(made.id, 1, 10)
    with pytest.raises(UserError):
        drafts.pop(made.id, 1, 10)


# -- rebinding ------------------------------------------------------------------------------------------------


def with_scale() -> Graph:
    graph = graph_of(SD15)
    graph["10"] = {
        "class_type": "ImageScale",
        "inputs": {"upscale_method": "lanczos", "width": 768, "height": 768, "crop": "disabled", "image": ["8", 0]},
    }
    graph["9"]["inputs"]["images"] = ["10", 0]
    return graph


def test_a_parameter_moves_to_the_picked_input_with_its_value_as_default() -> None:
    workflow = detect_workflow(with_scale(), "w")
    moved = rebind(workflow, "width", Target("10", "width"))
    assert moved.params["width"].targets == (Target("10", "width"),)
    assert (moved.params["width"].default, moved.params["width"].minimum) == (768, 64)
    assert moved.params["height"] == workflow.params["height"]


def test_only_nodes_with_a_fitting_literal_input_are_offered() -> None:
    workflow = detect_workflow(with_scale(), "w")
    assert bindable_nodes(workflow, "width") == ["3", "5", "10"]  # ints: the sampler's, the latent's, the scale's
    assert bindable_nodes(workflow, "prompt") == ["3", "4", "6", "7", "9", "10"]


def test_a_value_of_another_type_or_a_link_cannot_be_bound() -> None:
    workflow = detect_workflow(with_scale(), "w")
    with pytest.raises(BadInputError, match="cannot take prompt"):
        rebind(workflow, "prompt", Target("3", "steps"))
    with pytest.raises(BadInputError, match="cannot take width"):
        rebind(workflow, "width", Target("10", "image"))
    with pytest.raises(BadInputError, match="not a parameter"):
        rebind(workflow, "evil", Target("10", "width"))


def test_a_new_text_parameter_is_made() -> None:
    workflow = detect_workflow(with_scale(), "w")
    moved = rebind(workflow, "negative", Target("9", "filename_prefix"))
    assert moved.params["negative"].targets == (Target("9", "filename_prefix"),)
    assert moved.params["negative"].default == "ComfyUI"


# -- our manifest ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "name"),
    [(COMMUNITY, "sd15_txt2img"), (COMMUNITY, "sdxl_refiner"), (COMMUNITY, "wan21_img2vid")]
    + [(SHIPPED, n) for n in SHIPPED_NAMES],
)
def test_the_manifest_we_write_reads_back_as_the_same_workflow(folder: Path, name: str) -> None:
    graph = parse_api_graph(json.loads((folder / f"{name}.json").read_text(encoding="utf-8")), name)
    workflow = detect_workflow(graph, name)
    read = parse_manifest(manifest_text(workflow, added_by=42), graph, name)
    assert (read.kind, read.outputs, dict(read.params)) == (workflow.kind, workflow.outputs, dict(workflow.params))


def test_strange_text_survives_the_manifest() -> None:
    graph = graph_of(SD15)
    text = 'say "hi"\\ \n\ttab \x7f del \x01 ctl 🦊 [params.x] = 1'
    graph["7"]["inputs"]["text"] = text
    workflow = detect_workflow(graph, "w")
    from dataclasses import replace

    workflow = replace(workflow, description='a "quoted"\nline')
    read = parse_manifest(manifest_text(workflow, added_by=1), graph, "w")
    assert read.params["negative"].default == text and read.description == 'a "quoted"\nline'


# -- the uploads folder and the registry ----------------------------------------------------------------------


def test_a_saved_upload_is_private_and_loads_into_the_registry(tmp_path: Path, models: dict[str, str]) -> None:
    folder = UploadFolder(tmp_path / "uploads", SHIPPED)
    workflow = detect_workflow(graph_of(SD15), "mine")
    folder.save("mine", dict(workflow.graph), manifest_text(workflow, added_by=1), guild_id=7)  # type: ignore[arg-type]
    for path in (tmp_path / "uploads" / "7" / "mine.json", tmp_path / "uploads" / "7" / "mine.toml"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for made in (tmp_path / "uploads", tmp_path / "uploads" / "7"):
        assert stat.S_IMODE(made.stat().st_mode) == 0o700
    registry = load_workflows(SHIPPED, models, uploads=tmp_path / "uploads")
    assert registry.uploaded == {"mine"} and not registry.workflows["mine"].detected
    assert registry.owners == {"mine": 7}
    assert registry.workflows["mine"].params == workflow.params
    assert registry.problems == ()


def test_a_shipped_name_or_an_existing_upload_is_never_written(tmp_path: Path) -> None:
    folder = UploadFolder(tmp_path / "uploads", SHIPPED)
    graph = graph_of(SD15)
    with pytest.raises(BadInputError, match="ships with the bot"):
        folder.save("txt2img", graph, "", guild_id=7)
    folder.save("mine", graph, 'kind = "image"\n', guild_id=7)
    with pytest.raises(BadInputError, match="already added"):
        folder.save("mine", graph, 'kind = "video"\n', guild_id=7)
    assert (tmp_path / "uploads" / "7" / "mine.toml").read_text() == 'kind = "image"\n'
    with pytest.raises(BadInputError):
        folder.save("../x", graph, "", guild_id=7)


def test_remove_deletes_only_the_uploads_files(tmp_path: Path) -> None:
    folder = UploadFolder(tmp_path / "uploads", SHIPPED)
    folder.save("mine", graph_of(SD15), 'kind = "image"\n', guild_id=7)
    assert folder.remove("mine", guild_id=7) and not (tmp_path / "uploads" / "7" / "mine.json").exists()
    assert not folder.remove("txt2img", guild_id=7) and (SHIPPED / "txt2img.json").exists()


def test_an_upload_with_a_shipped_name_is_skipped_by_the_registry(tmp_path: Path, models: dict[str, str]) -> None:
    uploads = tmp_path / "uploads"
    (uploads / "7").mkdir(parents=True)
    (uploads / "7" / "txt2img.json").write_bytes(SD15)
    registry = load_workflows(SHIPPED, models, uploads=uploads)
    assert registry.uploaded == frozenset() and registry.workflows["txt2img"].source == SHIPPED / "txt2img.json"
    assert any("name of a shipped one" in p for p in registry.problems)
