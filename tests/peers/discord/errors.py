"""Discord's JSON error bodies and the codes the emulator answers with.

Every error body has Discord's shape: ``{"message": ..., "code": ...}``, plus ``errors`` for Invalid Form Body
(50035), whose tree mirrors the request body with ``_errors`` lists at the offending leaves.
"""

from __future__ import annotations

from typing import Any

UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
UNKNOWN_WEBHOOK = 10015
UNKNOWN_APPLICATION_COMMAND = 10063
UNKNOWN_INTERACTION = 10062
REQUEST_ENTITY_TOO_LARGE = 40005
INTERACTION_ALREADY_ACKNOWLEDGED = 40060
MISSING_ACCESS = 50001
CANNOT_SEND_EMPTY_MESSAGE = 50006
INVALID_WEBHOOK_TOKEN = 50027
INVALID_FORM_BODY = 50035

MESSAGES: dict[int, str] = {
    UNKNOWN_CHANNEL: "Unknown Channel",
    UNKNOWN_MESSAGE: "Unknown Message",
    UNKNOWN_WEBHOOK: "Unknown Webhook",
    UNKNOWN_APPLICATION_COMMAND: "Unknown application command",
    UNKNOWN_INTERACTION: "Unknown interaction",
    REQUEST_ENTITY_TOO_LARGE: "Request entity too large",
    INTERACTION_ALREADY_ACKNOWLEDGED: "Interaction has already been acknowledged.",
    MISSING_ACCESS: "Missing Access",
    CANNOT_SEND_EMPTY_MESSAGE: "Cannot send an empty message",
    INVALID_WEBHOOK_TOKEN: "Invalid Webhook Token",
    INVALID_FORM_BODY: "Invalid Form Body",
}


def error_body(code: int, message: str | None = None) -> dict[str, Any]:
    return {"message": message if message is not None else MESSAGES[code], "code": code}


def http_error_body(status: int, reason: str) -> dict[str, Any]:
    """The body Discord gives for plain HTTP errors (unknown route, bad auth): code 0."""
    return {"message": f"{status}: {reason}", "code": 0}


def invalid_form_body(errors: dict[str, Any]) -> dict[str, Any]:
    return {"message": MESSAGES[INVALID_FORM_BODY], "code": INVALID_FORM_BODY, "errors": errors}
