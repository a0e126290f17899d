"""The reader is generic: any frozen dataclass of ``setting(...)`` fields is read and checked the same way."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from discomfy.config import from_table, setting
from discomfy.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    size: int = setting(3, env="TOY_SIZE", low=1, high=9)
    tags: tuple[str, ...] = setting(("a",), env="TOY_TAGS")
    costs: Mapping[str, int] = setting(factory=lambda: {"x": 1, "y": 2}, closed=True, low=0, high=5)


@dataclass(frozen=True)
class Toy:
    on: bool = setting(False, env="TOY_ON")
    ratio: float = setting(0.5, low=0, high=1)
    home: Path = setting(Path("h"), env="TOY_HOME")  # noqa: RUF009
    inner: Inner = Inner()


def test_defaults_from_an_empty_table() -> None:
    assert from_table(Toy, {}, {}, "toy.toml") == Toy()


def test_values_from_the_table_and_the_environment() -> None:
    table = {"on": True, "ratio": 1, "inner": {"size": 4, "costs": {"y": 0}}}
    env = {"TOY_SIZE": "7", "TOY_TAGS": "p, q,", "TOY_HOME": " /srv/toy ", "TOY_ON": ""}
    toy = from_table(Toy, table, env, "toy.toml")
    assert toy == Toy(on=True, ratio=1.0, home=Path("/srv/toy"), inner=Inner(7, ("p", "q"), {"x": 1, "y": 0}))


def test_environment_booleans() -> None:
    assert from_table(Toy, {"on": False}, {"TOY_ON": "yes"}, "toy.toml").on is True
    assert from_table(Toy, {"on": True}, {"TOY_ON": "off"}, "toy.toml").on is False


def test_every_problem_at_once() -> None:
    table = {"on": "yes", "ratio": 2, "inner": {"size": 0, "tags": [1], "costs": {"z": 1, "x": 9}, "what": 1}}
    with pytest.raises(ConfigError) as caught:
        from_table(Toy, table, {"TOY_HOME": "x", "TOY_SIZE": "big"}, "toy.toml")
    assert caught.value.problems == (
        "on must be true or false, not 'yes'.",
        "ratio is 2; it must be between 0 and 1.",
        "unknown setting 'inner.what' in toy.toml; [inner] knows: costs, size, tags.",
        "inner.size must be a whole number between 1 and 9, not 'big' (from the environment: TOY_SIZE).",
        "inner.tags[0] must be a string in quotes, not 1.",
        "unknown setting 'inner.costs.z' in toy.toml; inner.costs knows: x, y.",
        "inner.costs.x is 9; it must be between 0 and 5.",
    )
