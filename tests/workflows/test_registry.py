"""The registry: a folder of workflows, each broken file explained and skipped, lookups, defaults, fallbacks."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from discomfy.errors import BadInputError
from discomfy.workflows import Kind, ParamType, load_workflows

from .conftest import SHIPPED, SHIPPED_NAMES


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the shipped workflows that a test may break."""
    for path in SHIPPED.iterdir():
        if path.suffix in (".json", ".toml"):
            shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_the_shipped_workflows_all_load(models: dict[str, str]) -> None:
    registry = load_workflows(SHIPPED, models)
    assert (registry.names(), registry.problems) == (sorted(SHIPPED_NAMES), ())


def test_the_shipped_workflows_validate_clean_together(models: dict[str, str], object_info: dict[str, Any]) -> None:
    assert load_workflows(SHIPPED, models).validate(object_info) == []


def test_lookup_by_name(folder: Path, models: dict[str, str]) -> None:
    assert load_workflows(folder, models).get("img2vid").kind is Kind.VIDEO


def test_an_unknown_name_lists_the_workflows(folder: Path, models: dict[str, str]) -> None:
    with pytest.raises(BadInputError) as caught:
        load_workflows(folder, models).get("txt2vid")
    assert caught.value.user_message == (
        "there is no workflow called 'txt2vid'; there are: img2vid, img2vid_ltxv, img2vid_wan22, txt2img, upscale, "
        "upscale_simple."
    )


def test_list_by_kind(folder: Path, models: dict[str, str]) -> None:
    assert [w.name for w in load_workflows(folder, models).of_kind(Kind.UPSCALE)] == ["upscale", "upscale_simple"]


def test_the_default_of_each_kind_is_the_flagged_one(folder: Path, models: dict[str, str]) -> None:
    registry = load_workflows(folder, models)
    assert [registry.default(k).name for k in Kind] == ["txt2img", "upscale", "img2vid_wan22"]  # type: ignore[union-attr]


def test_without_a_flag_the_first_by_name_is_the_default(folder: Path, models: dict[str, str]) -> None:
    shutil.copy(folder / "upscale_simple.json", folder / "a_resize.json")
    (folder / "upscale.toml").write_text(
        (folder / "upscale.toml").read_text(encoding="utf-8").replace("default = true\n", ""), encoding="utf-8"
    )
    assert load_workflows(folder, models).default(Kind.UPSCALE).name == "a_resize"  # type: ignore[union-attr]


def test_two_flagged_defaults_are_reported(folder: Path, models: dict[str, str]) -> None:
    shutil.copy(folder / "txt2img.json", folder / "txt2img_b.json")
    shutil.copy(folder / "txt2img.toml", folder / "txt2img_b.toml")
    registry = load_workflows(folder, models)
    assert registry.default(Kind.IMAGE).name == "txt2img"  # type: ignore[union-attr]
    assert registry.problems == (
        "txt2img_b: 'txt2img' is already the default image workflow; remove default = true from one of them.",
    )


def test_no_default_for_a_kind_without_workflows(tmp_path: Path, models: dict[str, str]) -> None:
    shutil.copy(SHIPPED / "txt2img.json", tmp_path / "only.json")
    assert load_workflows(tmp_path, models).default(Kind.VIDEO) is None


def test_broken_json_is_reported_and_the_others_load(folder: Path, models: dict[str, str]) -> None:
    (folder / "broken.json").write_text('{"1": {"class_type": ', encoding="utf-8")
    registry = load_workflows(folder, models)
    assert registry.names() == sorted(SHIPPED_NAMES)
    assert registry.problems == (
        "broken.json: workflow 'broken' is not valid JSON (line 1, column 22: Expecting value); "
        "export it again from ComfyUI with Workflow → Export (API).",
    )


def test_a_ui_format_file_says_to_export_with_export_api(folder: Path, models: dict[str, str]) -> None:
    (folder / "ui.json").write_text('{"last_node_id": 9, "nodes": [{"id": 1, "type": "KSampler"}], "links": []}')
    (problem,) = load_workflows(folder, models).problems
    assert problem.startswith("ui.json: workflow 'ui' is in ComfyUI's UI format") and "Export (API)" in problem


def test_a_whole_prompt_request_is_explained(folder: Path, models: dict[str, str]) -> None:
    (folder / "req.json").write_text('{"prompt": {"1": {"class_type": "SaveImage", "inputs": {}}}, "client_id": "x"}')
    (problem,) = load_workflows(folder, models).problems
    assert 'keep only the graph under "prompt"' in problem


def test_a_node_without_class_type_is_reported(folder: Path, models: dict[str, str]) -> None:
    (folder / "odd.json").write_text('{"1": {"inputs": {}}}', encoding="utf-8")
    (problem,) = load_workflows(folder, models).problems
    assert problem.startswith("odd.json: workflow 'odd': node 1 has no 'class_type'")


def test_a_file_that_is_not_utf8_is_reported(folder: Path, models: dict[str, str]) -> None:
    (folder / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    (problem,) = load_workflows(folder, models).problems
    assert problem.startswith("bin.json: workflow 'bin' cannot be read")


def test_a_bad_manifest_is_reported_and_the_others_load(folder: Path, models: dict[str, str]) -> None:
    (folder / "img2vid.toml").write_text('kind = "film"\n', encoding="utf-8")
    registry = load_workflows(folder, models)
    assert "img2vid" not in registry.names() and len(registry.names()) == 5
    assert registry.problems == (
        "img2vid.toml: the manifest of workflow 'img2vid' must say kind = one of image, upscale, video "
        "(it says 'film').",
        "img2vid_ltxv: its fallback 'img2vid' is not a loaded workflow; it has none now.",
    )


def test_a_manifest_without_its_workflow_is_reported(folder: Path, models: dict[str, str]) -> None:
    (folder / "lonely.toml").write_text('kind = "image"\n', encoding="utf-8")
    assert load_workflows(folder, models).problems == (
        "lonely.toml: a manifest without its workflow; put lonely.json beside it.",
    )


def test_a_workflow_needing_an_unconfigured_model_role_is_reported(folder: Path, models: dict[str, str]) -> None:
    del models["video_checkpoint"]
    registry = load_workflows(folder, models)
    assert "img2vid" not in registry.names()
    problem, lost_fallback = registry.problems
    assert lost_fallback == "img2vid_ltxv: its fallback 'img2vid' is not a loaded workflow; it has none now."
    assert problem.startswith("img2vid.json: workflow 'img2vid' uses {models.video_checkpoint}, but no model file")
    assert 'add `video_checkpoint = "file.safetensors"` under [models]' in problem


def test_a_missing_folder_is_reported(tmp_path: Path, models: dict[str, str]) -> None:
    registry = load_workflows(tmp_path / "nope", models)
    assert registry.names() == [] and "does not exist" in registry.problems[0]


def test_a_workflow_without_manifest_is_detected(folder: Path, models: dict[str, str]) -> None:
    (folder / "txt2img.toml").unlink()
    workflow = load_workflows(folder, models).get("txt2img")
    assert workflow.detected and "prompt" in workflow.params


def test_detection_uses_the_object_info_given(
    folder: Path, models: dict[str, str], object_info: dict[str, Any]
) -> None:
    (folder / "txt2img.toml").unlink()
    workflow = load_workflows(folder, models, object_info).get("txt2img")
    assert workflow.params["sampler"].type is ParamType.CHOICE


def test_the_fallback_chain_is_the_order_to_try(folder: Path, models: dict[str, str]) -> None:
    chain = load_workflows(folder, models).with_fallbacks("upscale")
    assert [w.name for w in chain] == ["upscale", "upscale_simple"]


def test_first_runnable_falls_back_when_the_upscale_model_is_missing(folder: Path, models: dict[str, str]) -> None:
    registry = load_workflows(folder, models)
    assert registry.first_runnable("upscale", {"v1-5-pruned-emaonly.safetensors"}).name == "upscale_simple"  # type: ignore[union-attr]


def test_first_runnable_keeps_the_model_workflow_when_it_can(folder: Path, models: dict[str, str]) -> None:
    registry = load_workflows(folder, models)
    assert registry.first_runnable("upscale", {"RealESRGAN_x4plus.pth"}).name == "upscale"  # type: ignore[union-attr]


def test_first_runnable_is_none_when_nothing_can_run(folder: Path, models: dict[str, str]) -> None:
    assert load_workflows(folder, models).first_runnable("txt2img", set()) is None


def test_needed_models_use_the_configured_files(folder: Path, models: dict[str, str]) -> None:
    registry = load_workflows(folder, models | {"video_checkpoint": "svd.safetensors"})
    assert registry.needed_models("img2vid") == {"svd.safetensors"}


def test_a_fallback_that_does_not_exist_is_reported_and_dropped(folder: Path, models: dict[str, str]) -> None:
    (folder / "upscale_simple.json").unlink()
    (folder / "upscale_simple.toml").unlink()
    registry = load_workflows(folder, models)
    assert registry.get("upscale").fallback is None
    assert registry.problems == ("upscale: its fallback 'upscale_simple' is not a loaded workflow; it has none now.",)


def test_a_fallback_of_another_kind_is_reported_and_dropped(folder: Path, models: dict[str, str]) -> None:
    text = (folder / "upscale.toml").read_text(encoding="utf-8").replace('"upscale_simple"', '"txt2img"')
    (folder / "upscale.toml").write_text(text, encoding="utf-8")
    registry = load_workflows(folder, models)
    assert registry.get("upscale").fallback is None
    assert registry.problems == ("upscale: its fallback 'txt2img' makes image, not upscale; it has none now.",)


# -- uploads belong to their Discord server ------------------------------------------------------------------


def add_upload(uploads: Path, guild_id: int, name: str, source: str, manifest: str | None = None) -> None:
    """A copy of the shipped ``source`` workflow (and its manifest, or ``manifest``) as ``name`` of ``guild_id``."""
    folder = uploads / str(guild_id)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SHIPPED / f"{source}.json", folder / f"{name}.json")
    text = manifest if manifest is not None else (SHIPPED / f"{source}.toml").read_text(encoding="utf-8")
    (folder / f"{name}.toml").write_text(text, encoding="utf-8")


def test_an_upload_exists_only_for_its_own_guild(folder: Path, tmp_path: Path, models: dict[str, str]) -> None:
    uploads = tmp_path / "uploads"
    add_upload(uploads, 7, "mine", "txt2img")
    registry = load_workflows(folder, models, uploads=uploads)
    assert (registry.owners, registry.uploaded, registry.problems) == ({"mine": 7}, {"mine"}, ())
    own = registry.for_guild(7)
    assert own.find("mine") is not None and "mine" in [w.name for w in own.of_kind(Kind.IMAGE)]
    assert own.uploaded == {"mine"}
    for elsewhere in (registry.for_guild(8), registry.for_guild(None)):
        assert elsewhere.find("mine") is None and "mine" not in elsewhere.names()
        assert [w.name for w in elsewhere.of_kind(Kind.IMAGE)] == ["txt2img"]
        assert elsewhere.uploaded == frozenset() and elsewhere.owners == {}
        with pytest.raises(BadInputError, match="no workflow called 'mine'"):
            elsewhere.get("mine")


def test_an_upload_never_becomes_a_default_where_a_shipped_workflow_makes_its_kind(
    folder: Path, tmp_path: Path, models: dict[str, str]
) -> None:
    uploads = tmp_path / "uploads"
    add_upload(uploads, 7, "aaa", "txt2img")  # first by name, and its manifest says default = true
    registry = load_workflows(folder, models, uploads=uploads)
    for view in (registry, registry.for_guild(7), registry.for_guild(8), registry.for_guild(None)):
        assert view.default(Kind.IMAGE).name == "txt2img"  # type: ignore[union-attr]


def test_an_upload_is_the_default_of_a_kind_no_shipped_workflow_makes_only_in_its_guild(
    folder: Path, tmp_path: Path, models: dict[str, str]
) -> None:
    for path in folder.glob("upscale*"):
        path.unlink()
    uploads = tmp_path / "uploads"
    add_upload(uploads, 7, "resize", "upscale_simple")
    registry = load_workflows(folder, models, uploads=uploads)
    assert registry.default(Kind.UPSCALE) is None
    assert registry.for_guild(7).default(Kind.UPSCALE).name == "resize"  # type: ignore[union-attr]
    assert registry.for_guild(8).default(Kind.UPSCALE) is None
    assert registry.for_guild(None).default(Kind.UPSCALE) is None


def test_a_shipped_fallback_never_leads_to_an_upload(folder: Path, tmp_path: Path, models: dict[str, str]) -> None:
    for path in folder.glob("upscale_simple.*"):
        path.unlink()
    uploads = tmp_path / "uploads"
    add_upload(uploads, 7, "upscale_simple", "upscale_simple")  # the name the shipped upscale falls back on
    registry = load_workflows(folder, models, uploads=uploads)
    assert registry.get("upscale").fallback is None
    assert [w.name for w in registry.for_guild(7).with_fallbacks("upscale")] == ["upscale"]
    assert "upscale: its fallback 'upscale_simple' is not a loaded workflow; it has none now." in registry.problems


def test_an_uploads_fallback_stays_in_its_guild(folder: Path, tmp_path: Path, models: dict[str, str]) -> None:
    uploads = tmp_path / "uploads"
    plain = (SHIPPED / "upscale_simple.toml").read_text(encoding="utf-8")
    add_upload(uploads, 7, "resize_a", "upscale_simple")
    add_upload(uploads, 8, "resize_b", "upscale_simple", 'fallback = "resize_a"\n' + plain)
    add_upload(uploads, 8, "resize_c", "upscale_simple", 'fallback = "resize_b"\n' + plain)
    add_upload(uploads, 8, "resize_d", "upscale_simple", 'fallback = "upscale_simple"\n' + plain)
    registry = load_workflows(folder, models, uploads=uploads)
    assert registry.get("resize_b").fallback is None
    assert "resize_b: its fallback 'resize_a' is not a loaded workflow; it has none now." in registry.problems
    assert [w.name for w in registry.for_guild(8).with_fallbacks("resize_c")] == ["resize_c", "resize_b"]
    assert [w.name for w in registry.with_fallbacks("resize_d")] == ["resize_d", "upscale_simple"]


def test_names_are_one_namespace_across_guilds(folder: Path, tmp_path: Path, models: dict[str, str]) -> None:
    uploads = tmp_path / "uploads"
    add_upload(uploads, 7, "mine", "txt2img")
    add_upload(uploads, 8, "mine", "upscale_simple")
    registry = load_workflows(folder, models, uploads=uploads)
    assert registry.owners == {"mine": 7} and registry.get("mine").kind is Kind.IMAGE
    assert registry.problems == (
        "uploaded workflow 'mine' of server 8 has the name of server 7's and is skipped; remove one.",
    )
    assert registry.for_guild(8).find("mine") is None


def test_an_upload_outside_a_guilds_folder_belongs_to_none_and_is_skipped(
    folder: Path, tmp_path: Path, models: dict[str, str]
) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    shutil.copy(SHIPPED / "txt2img.json", uploads / "stray.json")
    (uploads / "not-a-guild").mkdir()
    shutil.copy(SHIPPED / "txt2img.json", uploads / "not-a-guild" / "other.json")
    registry = load_workflows(folder, models, uploads=uploads)
    assert "stray" not in registry.workflows and "other" not in registry.workflows
    assert len(registry.problems) == 1 and "stray.json belongs to no Discord server" in registry.problems[0]
