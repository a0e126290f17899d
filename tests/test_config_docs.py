"""The example file and the README say what the dataclasses in discomfy/config.py say: same keys, same
defaults, same environment variables."""

import re
import tomllib
from pathlib import Path
from typing import Any, get_origin

from discomfy.config import CONFIG_ENV, DEFAULT_CONFIG_FILE, ENV_OVERRIDES, Settings, from_table, setting_fields

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = (REPO / "discomfy.example.toml").read_text(encoding="utf-8")
SECTIONS = {name.split(".")[0] for name, _, _ in setting_fields() if "." in name}


def leaves(table: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted names of the settings in a TOML table: sections are walked, tables inside a section are values."""
    names: set[str] = set()
    for key, value in table.items():
        if not prefix and key in SECTIONS and isinstance(value, dict):
            names |= leaves(value, f"{key}.")
        else:
            names.add(prefix + key)
    return names


def default_of(name: str) -> Any:
    value: Any = Settings()
    for part in name.split("."):
        value = getattr(value, part)
    return value


def example_with_commented_settings() -> dict[str, Any]:
    """The example with its commented-out settings (``# token = ""``) switched on."""
    return tomllib.loads(re.sub(r"(?m)^#\s*(?=[a-z_]+\s*=)", "", EXAMPLE))


def test_the_example_documents_exactly_the_settings() -> None:
    documented = leaves(example_with_commented_settings())
    defined = {name for name, _, _ in setting_fields()}
    assert documented - defined == set(), "in discomfy.example.toml but not in config.py"
    assert defined - documented == set(), "in config.py but not in discomfy.example.toml"


def test_the_example_states_the_defaults() -> None:
    table = example_with_commented_settings()
    read = from_table(Settings, table, {}, "discomfy.example.toml")
    for name in sorted(leaves(table)):
        value: Any = read
        for part in name.split("."):
            value = getattr(value, part)
        assert value == default_of(name), f"{name}: the example says {value!r}, config.py {default_of(name)!r}"


def test_the_example_lists_the_environment_variables() -> None:
    header = EXAMPLE.split("\n\n", 1)[0]
    assert set(re.findall(r"\b[A-Z][A-Z_]+[A-Z]\b", header)) == {*ENV_OVERRIDES, CONFIG_ENV}


def readme_env_table() -> list[list[str]]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row] for row in rows]


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def shown(default: Any) -> list[str]:
    """A default as the README writes it in backticks (nothing for an empty one)."""
    if isinstance(default, tuple):
        return [", ".join(map(str, default))] if default else []
    return [str(default)] if str(default) else []


def test_the_readme_table_matches_the_environment_mapping() -> None:
    rows = readme_env_table()
    table = {ticked(var)[0]: ticked(setting)[0] if ticked(setting) else None for var, setting, _ in rows}
    assert table == {**ENV_OVERRIDES, CONFIG_ENV: None}
    kinds = {name: kind for name, _, kind in setting_fields()}
    for var, setting, default in rows:
        name = table[ticked(var)[0]]
        expected = shown(default_of(name)) if name else [DEFAULT_CONFIG_FILE]
        assert [v.removeprefix("./") for v in ticked(default)] == expected, f"README default of {var}"
        if name and get_origin(kinds[name]) is tuple:
            assert "comma-separated" in setting, f"README: say that {var} is comma-separated"
