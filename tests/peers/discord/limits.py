"""Discord's limits on messages, components, modals, autocomplete results and commands, as pure checks.

Each ``check_*`` function walks a request body and adds Discord-shaped errors to a :class:`FormErrors` tree
(``{"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": ...}]}}``); an empty tree means the
body is acceptable. The numbers live in :class:`Limits` so tests can tighten them. This module does no I/O and
must never import aiohttp or asyncio.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ACTION_ROW = 1
BUTTON = 2
STRING_SELECT = 3
TEXT_INPUT = 4
SELECT_TYPES = frozenset({3, 5, 6, 7, 8})
LINK_BUTTON_STYLE = 5
PREMIUM_BUTTON_STYLE = 6
#: MessageFlags.IS_COMPONENTS_V2: the message's components are a layout tree, not action rows.
COMPONENTS_V2_FLAG = 1 << 15

_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")


@dataclass(frozen=True)
class Limits:
    content: int = 2000
    embeds: int = 10
    embed_title: int = 256
    embed_description: int = 4096
    embed_fields: int = 25
    embed_field_name: int = 256
    embed_field_value: int = 1024
    embed_footer: int = 2048
    embed_author: int = 256
    embed_total: int = 6000
    files: int = 10
    action_rows: int = 5
    row_width: int = 5
    custom_id: int = 100
    button_label: int = 80
    select_options: int = 25
    select_option_text: int = 100
    select_placeholder: int = 150
    modal_title: int = 45
    modal_inputs: int = 5
    text_input_label: int = 45
    text_input_value: int = 4000
    text_input_placeholder: int = 100
    autocomplete_choices: int = 25
    choice_name: int = 100
    choice_value: int = 100
    command_name: int = 32
    command_description: int = 100
    command_options: int = 25


class FormErrors:
    """Collects errors into Discord's nested ``errors`` tree."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: Sequence[str | int], code: str, message: str) -> None:
        node = self.tree
        for key in path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def __bool__(self) -> bool:
        return bool(self.tree)

    def max_length(self, path: Sequence[str | int], value: object, limit: int) -> None:
        if isinstance(value, str | list) and len(value) > limit:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def bad_length(self, path: Sequence[str | int], value: object, low: int, high: int) -> None:
        if not isinstance(value, str | list) or not low <= len(value) <= high:
            self.add(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")


def _text_length(value: object) -> int:
    return len(value) if isinstance(value, str) else 0


def check_embeds(embeds: object, limits: Limits, errors: FormErrors, path: tuple[str | int, ...]) -> None:
    if not isinstance(embeds, list):
        return
    errors.max_length(path, embeds, limits.embeds)
    total = 0
    for index, embed in enumerate(embeds):
        if not isinstance(embed, Mapping):
            errors.add((*path, index), "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            continue
        here = (*path, index)
        errors.max_length((*here, "title"), embed.get("title"), limits.embed_title)
        errors.max_length((*here, "description"), embed.get("description"), limits.embed_description)
        total += _text_length(embed.get("title")) + _text_length(embed.get("description"))
        fields = embed.get("fields") or []
        errors.max_length((*here, "fields"), fields, limits.embed_fields)
        for field_index, field in enumerate(fields if isinstance(fields, list) else []):
            name, value = field.get("name"), field.get("value")
            errors.max_length((*here, "fields", field_index, "name"), name, limits.embed_field_name)
            errors.max_length((*here, "fields", field_index, "value"), value, limits.embed_field_value)
            total += _text_length(name) + _text_length(value)
        footer, author = embed.get("footer") or {}, embed.get("author") or {}
        errors.max_length((*here, "footer", "text"), footer.get("text"), limits.embed_footer)
        errors.max_length((*here, "author", "name"), author.get("name"), limits.embed_author)
        total += _text_length(footer.get("text")) + _text_length(author.get("name"))
    if total > limits.embed_total:
        errors.add(path, "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {limits.embed_total}")


def _check_custom_id(
    component: Mapping[str, Any], limits: Limits, errors: FormErrors, path: tuple[str | int, ...]
) -> None:
    errors.bad_length((*path, "custom_id"), component.get("custom_id"), 1, limits.custom_id)


def check_component(
    component: Mapping[str, Any], limits: Limits, errors: FormErrors, path: tuple[str | int, ...]
) -> None:
    """One interactive component (button, select, text input) of a message or a modal."""
    kind = component.get("type")
    if kind == BUTTON:
        style = component.get("style")
        if style == LINK_BUTTON_STYLE:
            if not component.get("url"):
                errors.add((*path, "url"), "BUTTON_COMPONENT_URL_REQUIRED", "A url is required")
        elif style != PREMIUM_BUTTON_STYLE:
            _check_custom_id(component, limits, errors, path)
        errors.max_length((*path, "label"), component.get("label"), limits.button_label)
    elif kind in SELECT_TYPES:
        _check_custom_id(component, limits, errors, path)
        errors.max_length((*path, "placeholder"), component.get("placeholder"), limits.select_placeholder)
        if kind == STRING_SELECT:
            options = component.get("options")
            errors.bad_length((*path, "options"), options, 1, limits.select_options)
            for index, option in enumerate(options if isinstance(options, list) else []):
                for key in ("label", "value", "description"):
                    errors.max_length((*path, "options", index, key), option.get(key), limits.select_option_text)
    elif kind == TEXT_INPUT:
        _check_custom_id(component, limits, errors, path)
        errors.max_length((*path, "label"), component.get("label"), limits.text_input_label)
        errors.max_length((*path, "value"), component.get("value"), limits.text_input_value)
        errors.max_length((*path, "placeholder"), component.get("placeholder"), limits.text_input_placeholder)


def walk_components(components: object) -> Iterator[Mapping[str, Any]]:
    """Every component in a (possibly nested) component list, depth first."""
    if not isinstance(components, list):
        return
    for component in components:
        if not isinstance(component, Mapping):
            continue
        yield component
        yield from walk_components(component.get("components"))
        accessory, inner = component.get("accessory"), component.get("component")
        for child in (accessory, inner):
            if isinstance(child, Mapping):
                yield from walk_components([child])


def _check_duplicate_custom_ids(components: object, errors: FormErrors, path: tuple[str | int, ...]) -> None:
    seen: set[str] = set()
    for component in walk_components(components):
        custom_id = component.get("custom_id")
        if isinstance(custom_id, str):
            if custom_id in seen:
                errors.add(path, "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated")
                return
            seen.add(custom_id)


def check_action_rows(
    rows: object, limits: Limits, errors: FormErrors, path: tuple[str | int, ...], *, max_rows: int
) -> None:
    """Classic components: at most ``max_rows`` action rows of at most five buttons or one select."""
    if not isinstance(rows, list):
        return
    errors.max_length(path, rows, max_rows)
    for index, row in enumerate(rows):
        here = (*path, index)
        if not isinstance(row, Mapping) or row.get("type") != ACTION_ROW:
            errors.add((*here, "type"), "COMPONENT_TYPE_INVALID", "Top-level components must be action rows")
            continue
        children = row.get("components")
        errors.bad_length((*here, "components"), children, 1, limits.row_width)
        children = children if isinstance(children, list) else []
        if any(child.get("type") in SELECT_TYPES for child in children) and len(children) > 1:
            errors.add(
                (*here, "components"),
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                "The specified component exceeds the maximum width",
            )
        for child_index, child in enumerate(children):
            check_component(child, limits, errors, (*here, "components", child_index))
    _check_duplicate_custom_ids(rows, errors, path)


def check_message(payload: Mapping[str, Any], limits: Limits, errors: FormErrors, prefix: tuple[str, ...] = ()) -> None:
    """Content, embeds and components of a message create/edit body (``prefix`` is ``("data",)`` in callbacks)."""
    content = payload.get("content")
    if content is not None and not isinstance(content, str):
        errors.add((*prefix, "content"), "BASE_TYPE_STRING", "Must be a string.")
    errors.max_length((*prefix, "content"), content, limits.content)
    check_embeds(payload.get("embeds"), limits, errors, (*prefix, "embeds"))
    components = payload.get("components")
    flags = payload.get("flags") or 0
    if isinstance(flags, int) and flags & COMPONENTS_V2_FLAG:
        for index, component in enumerate(walk_components(components)):
            if component.get("type") in (BUTTON, *SELECT_TYPES):
                check_component(component, limits, errors, (*prefix, "components", index))
        _check_duplicate_custom_ids(components, errors, (*prefix, "components"))
    else:
        check_action_rows(components, limits, errors, (*prefix, "components"), max_rows=limits.action_rows)


def is_empty_message(payload: Mapping[str, Any], file_count: int) -> bool:
    """Discord refuses (50006) a new message with nothing to show."""
    return not (
        payload.get("content")
        or payload.get("embeds")
        or payload.get("components")
        or payload.get("sticker_ids")
        or payload.get("poll")
        or file_count
    )


def check_modal(data: Mapping[str, Any], limits: Limits, errors: FormErrors) -> None:
    """A type 9 callback's ``data``: title, custom_id and at most five text inputs."""
    errors.bad_length(("data", "title"), data.get("title"), 1, limits.modal_title)
    errors.bad_length(("data", "custom_id"), data.get("custom_id"), 1, limits.custom_id)
    rows = data.get("components")
    errors.bad_length(("data", "components"), rows, 1, limits.modal_inputs)
    for index, row in enumerate(rows if isinstance(rows, list) else []):
        here: tuple[str | int, ...] = ("data", "components", index)
        inner = row.get("components") if row.get("type") == ACTION_ROW else [row.get("component")]
        if not isinstance(inner, list) or len(inner) != 1 or not isinstance(inner[0], Mapping):
            errors.add((*here, "components"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 1 in length.")
            continue
        check_component(inner[0], limits, errors, (*here, "components", 0))
    _check_duplicate_custom_ids(rows, errors, ("data", "components"))


def check_autocomplete(data: Mapping[str, Any], limits: Limits, errors: FormErrors) -> None:
    """A type 8 callback's ``data``: at most 25 choices with short names and values."""
    choices = data.get("choices")
    if not isinstance(choices, list):
        errors.add(("data", "choices"), "BASE_TYPE_REQUIRED", "This field is required")
        return
    errors.max_length(("data", "choices"), choices, limits.autocomplete_choices)
    for index, choice in enumerate(choices):
        errors.bad_length(("data", "choices", index, "name"), choice.get("name"), 1, limits.choice_name)
        value = choice.get("value")
        if isinstance(value, str):
            errors.max_length(("data", "choices", index, "value"), value, limits.choice_value)


def check_command(
    payload: Mapping[str, Any], limits: Limits, errors: FormErrors, prefix: tuple[str | int, ...] = ()
) -> None:
    """An application command registration: name, description and options (recursively)."""
    name = payload.get("name")
    kind = payload.get("type", 1)
    if not isinstance(name, str) or not _COMMAND_NAME.match(name) or (kind == 1 and name != name.lower()):
        errors.add((*prefix, "name"), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
    if kind == 1:
        errors.bad_length((*prefix, "description"), payload.get("description"), 1, limits.command_description)
    else:
        errors.max_length((*prefix, "description"), payload.get("description"), limits.command_description)
    options = payload.get("options") or []
    errors.max_length((*prefix, "options"), options, limits.command_options)
    for index, option in enumerate(options if isinstance(options, list) else []):
        here = (*prefix, "options", index)
        check_command({**option, "type": 1}, limits, errors, here)
        choices = option.get("choices") or []
        errors.max_length((*here, "choices"), choices, limits.autocomplete_choices)
