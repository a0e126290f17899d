"""The uploads folder per Discord server: one namespace of names, each server removes only its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from discomfy.errors import BadInputError
from discomfy.workflows import Graph
from discomfy.workflows.upload_files import UploadFolder

from .conftest import SHIPPED

GRAPH: Graph = json.loads((SHIPPED / "upscale_simple.json").read_text(encoding="utf-8"))


@pytest.fixture
def folder(tmp_path: Path) -> UploadFolder:
    return UploadFolder(tmp_path / "uploads", SHIPPED)


def test_an_upload_is_written_in_its_servers_folder(folder: UploadFolder) -> None:
    path = folder.save("mine", GRAPH, 'kind = "upscale"\n', guild_id=7)
    assert path == folder.folder / "7" / "mine.json" and (folder.folder / "7" / "mine.toml").exists()
    assert folder.owner("mine") == 7 and folder.owner("other") is None


def test_another_servers_name_is_taken(folder: UploadFolder) -> None:
    folder.save("mine", GRAPH, "", guild_id=7)
    assert folder.taken("mine", 8) == "The name `mine` is taken; pick another name."
    assert folder.taken("mine", 7) == "A workflow called `mine` was already added; `/workflow remove mine` it first."
    with pytest.raises(BadInputError, match="is taken"):
        folder.save("mine", GRAPH, "", guild_id=8)
    assert not (folder.folder / "8" / "mine.json").exists()


def test_a_server_never_removes_another_servers_upload(folder: UploadFolder) -> None:
    folder.save("mine", GRAPH, "", guild_id=7)
    assert not folder.remove("mine", guild_id=8)
    assert (folder.folder / "7" / "mine.json").exists() and (folder.folder / "7" / "mine.toml").exists()
    assert folder.remove("mine", guild_id=7) and folder.owner("mine") is None


@pytest.mark.parametrize("guild_id", [0, -1])
def test_without_a_server_nothing_is_written_or_removed(folder: UploadFolder, guild_id: int) -> None:
    with pytest.raises(BadInputError, match="only be added, and removed, in a server"):
        folder.save("mine", GRAPH, "", guild_id=guild_id)
    with pytest.raises(BadInputError, match="in a server"):
        folder.remove("mine", guild_id=guild_id)
    assert not folder.folder.exists()
