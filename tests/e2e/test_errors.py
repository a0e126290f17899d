"""The one error handler: an unexpected failure in a command shows a short message with a reference id that
the log also has, with the traceback; the bot keeps working."""

from __future__ import annotations

import logging
import re

import pytest

from tests.e2e.studio import Studio

pytestmark = pytest.mark.timeout(60)


async def test_an_unexpected_error_shows_a_reference_that_is_in_the_log(
    studio: Studio, caplog: pytest.LogCaptureFixture
) -> None:
    await studio.start()

    async def broken() -> None:
        raise RuntimeError("the database melted")

    studio.stack.store.counts = broken  # type: ignore[method-assign]
    emu = studio.discord
    with caplog.at_level(logging.ERROR):
        interaction = await emu.send_slash_command("bob", "general", "status")
        message = await studio.until(
            lambda: next((m for m in emu.messages("general") if m.ephemeral and "reference" in m.content), None),
            what="the ephemeral failure message",
        )
    found = re.search(r"reference `([0-9a-f]+)`", message.content)
    assert found is not None
    assert "melted" not in message.content  # internals stay in the log
    logged = [r for r in caplog.records if found.group(1) in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert interaction.refusals == []
