import logging

import pytest

from discomfy.logs import REDACTED, SecretFilter

SECRET = "MTIzNDU2Nzg5.secret-token-value.abcdef"


def make_logger(records: list[logging.LogRecord]) -> logging.Logger:
    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("test.secret")
    logger.handlers = []
    handler = Keep()
    handler.addFilter(SecretFilter([SECRET]))
    logger.addHandler(handler)
    logger.propagate = False
    return logger


def test_token_in_a_message_argument_is_redacted() -> None:
    records: list[logging.LogRecord] = []
    make_logger(records).warning("sending Authorization: Bot %s", SECRET)
    assert SECRET not in records[0].getMessage()
    assert REDACTED in records[0].getMessage()


def test_token_in_a_traceback_is_redacted() -> None:
    records: list[logging.LogRecord] = []
    logger = make_logger(records)
    try:
        raise RuntimeError(f"bad header {SECRET}")
    except RuntimeError:
        logger.exception("request failed")
    assert records[0].exc_text is not None
    assert SECRET not in records[0].exc_text


@pytest.mark.parametrize("short", ["", "abc"])
def test_short_strings_are_not_treated_as_secrets(short: str) -> None:
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("test.short")
    logger.handlers = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(SecretFilter([short]))
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("abc def")
    assert records[0].getMessage() == "abc def"
