"""A real job (service, runner, engine, stream against the ComfyUI emulator): every log line about it carries its
id as ``record.job`` — the lines of its own task, of the tasks it starts, and the service's lines about it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from discomfy.jobs.state import JobState
from discomfy.logs import JobFilter
from tests.jobs.test_service import Rig, actor, open_rig, request, until  # noqa: F401  (open_rig: a fixture)

#: Loggers whose every line during the run is about the one job (the pool's health checks are not).
JOB_LOGGERS = ("discomfy.jobs.runner", "discomfy.comfy.engine", "discomfy.comfy.stream", "discomfy.comfy.remote")


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.addFilter(JobFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def kept() -> Iterator[Keep]:
    handler = Keep()
    logger = logging.getLogger("discomfy")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


async def test_every_line_about_a_job_carries_its_id(
    open_rig: Callable[..., Any],  # noqa: F811  (the fixture imported above)
    kept: Keep,
) -> None:
    rig: Rig = await open_rig()
    # The bot's observer is called from the job's task and logs without naming the job (as bot/observer.py does).
    show = rig.observer.show

    def show_and_log(*args: Any) -> None:
        logging.getLogger("discomfy.bot.observer").debug("drawing a progress update")
        show(*args)

    rig.observer.show = show_and_log  # type: ignore[method-assign]
    job = await rig.service.submit(request(1), actor(1))
    done = await until(rig.store, job.id, JobState.DELIVERED, JobState.FAILED)
    await rig.close()
    assert done.state is JobState.DELIVERED, done.error

    about_the_job = [r for r in kept.records if job.id in r.getMessage() or r.name.startswith(JOB_LOGGERS)]
    about_the_job += [r for r in kept.records if r.name == "discomfy.bot.observer"]
    assert {r.name for r in about_the_job} >= {"discomfy.jobs.runner", "discomfy.jobs.service", "discomfy.bot.observer"}
    assert [(r.name, r.getMessage()) for r in about_the_job if getattr(r, "job", None) != job.id] == []
