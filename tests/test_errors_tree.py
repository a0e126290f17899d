"""errors.py draws the one exception tree: every error class discomfy defines appears in that drawing."""

import importlib
import pkgutil

import discomfy
from discomfy import errors


def all_subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= all_subclasses(sub)
    return found


def test_every_error_class_is_drawn_in_the_tree() -> None:
    for module in pkgutil.walk_packages(discomfy.__path__, "discomfy."):
        if not module.name.endswith("__main__"):  # running it starts the bot
            importlib.import_module(module.name)
    drawn = errors.__doc__ or ""
    missing = sorted(c.__name__ for c in all_subclasses(errors.DiscomfyError) if c.__name__ not in drawn)
    assert missing == []
