"""What the bot counts, in Prometheus' terms, on a registry of its own.

How it works: ``Metrics`` owns one ``CollectorRegistry`` (never prometheus_client's global one: several bots can
live in one process, and the tests run many). Its numbers are of two kinds:
- events, counted where they happen, through the ``Metrics`` methods the layers are handed (``job_moved``,
  ``edited``, ``delivered``): jobs that end (by state and workflow), their queue wait and run time
  (histograms, from the times the state table stamps on the row, once per job, at its end), Discord message
  edits (progress / final), deliveries by what fitting them into Discord's upload limit took;
- state, read at scrape time: ``observe(view)`` keeps a ``View`` built just before the scrape (``ops_http``
  reads the database, the ComfyUI pool and the Discord bucket book into it) and a collector turns the latest
  view into metric families: jobs by state and workflow (rows in the database), each ComfyUI server's health,
  queue, our jobs on it, retried calls and job websocket reconnects, Discord 429s by scope, output files and
  bytes on disk. Totals that the layers keep themselves (429s, retries, reconnects) are exported as counters.

``NAMES`` lists every metric family exported (the dashboard test checks its queries against a live scrape).

Never: import anything above the ground floor (no nextcord, no job or ComfyUI types: the view is plain data);
put an unbounded string in a label — labels are job states, workflow names from our own folder, the three
429 scopes (anything else Discord says becomes "other"), edit kinds, fit kinds, and server URLs from the
configuration (credentials redacted by the caller).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: Content-Type of ``render()``: Prometheus' text exposition format 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds: a job waits from a blink (a free server) to many minutes (a busy evening).
WAIT_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Seconds: an SD 1.5 picture takes seconds, a video many minutes.
RUN_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)
#: The scopes of a Discord 429 (developer docs, Topics → Rate Limits: ``X-RateLimit-Scope``).
SCOPES = ("user", "shared", "global")
#: What fitting a delivered file into Discord's upload limit took (``bot/delivery.py`` says which).
FITS = ("as_is", "recompressed", "transcoded", "too_big")
EDIT_KINDS = ("progress", "final")
#: Job states in which a row is finished (``jobs/state.py``'s terminal states).
FINISHED = frozenset({"delivered", "failed", "cancelled", "lost"})


@dataclass(frozen=True)
class ServerView:
    """One ComfyUI server as the pool sees it."""

    server: str  # its URL, credentials redacted
    up: bool
    queue: int  # ComfyUI's own queue (everyone's), at the last health check
    in_flight: int  # our jobs on it now
    retries: int  # retried calls to it since start
    reconnects: int  # job websockets to it that dropped and were opened again since start


@dataclass(frozen=True)
class View:
    """The state read just before a scrape."""

    #: (state, workflow) → rows in the database.
    jobs: Mapping[tuple[str, str], int] = field(default_factory=lambda: MappingProxyType({}))
    servers: tuple[ServerView, ...] = ()
    #: Discord 429s by scope since start.
    refusals: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    output_files: int = 0
    output_bytes: int = 0
    gateway_up: bool = False


class Metrics:
    """One bot's metrics; see the module docstring."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.jobs_finished = Counter(
            "discomfy_jobs_finished",
            "Jobs that reached a terminal state in this process, by state and workflow.",
            ["state", "workflow"],
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "discomfy_job_queue_wait_seconds",
            "From the request to the job running on ComfyUI (our queue, then ComfyUI's).",
            ["workflow"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.run_time = Histogram(
            "discomfy_job_run_seconds",
            "From the job running on ComfyUI to its end (its result delivered, or its failure).",
            ["workflow"],
            buckets=RUN_BUCKETS,
            registry=self.registry,
        )
        self.edits = Counter(
            "discomfy_discord_edits",
            "Job messages written on Discord, by kind (progress updates, final results).",
            ["kind"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "discomfy_deliveries",
            "Result files delivered, by what fitting them into the upload limit took.",
            ["fit"],
            registry=self.registry,
        )
        for kind in EDIT_KINDS:
            self.edits.labels(kind=kind)
        for fit in FITS:
            self.deliveries.labels(fit=fit)
        self._view = View()
        self.registry.register(_ViewCollector(lambda: self._view))

    # -- events --

    def job_moved(
        self,
        state: str,
        workflow: str,
        *,
        created_at: float,
        submitted_at: float | None,
        started_at: float | None,
        now: float,
    ) -> None:
        """A job's row moved to ``state`` at ``now`` (the times are the row's, on one clock).

        Only its end counts, so each job is counted and timed once: the wait from the request to its start at
        ComfyUI (running; or sent, for a job that ended before anyone saw it run), and the run from that start
        to its end. A job that never reached ComfyUI (cancelled while waiting) is counted but not timed."""
        if state not in FINISHED:
            return
        self.jobs_finished.labels(state=state, workflow=workflow).inc()
        start = started_at if started_at is not None else submitted_at
        if start is not None:
            self.queue_wait.labels(workflow=workflow).observe(max(0.0, start - created_at))
            self.run_time.labels(workflow=workflow).observe(max(0.0, now - start))

    def edited(self, kind: str) -> None:
        """A job message was written on Discord: ``kind`` is "progress" or "final"."""
        self.edits.labels(kind=kind if kind in EDIT_KINDS else "progress").inc()

    def delivered(self, fit: str) -> None:
        """A result file went to Discord (or could not: "too_big"); ``fit`` is one of ``FITS``."""
        self.deliveries.labels(fit=fit if fit in FITS else "as_is").inc()

    # -- state --

    def observe(self, view: View) -> None:
        """The state to export at the next scrape."""
        self._view = view

    def render(self) -> bytes:
        """Every metric in Prometheus' text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)

    def names(self) -> frozenset[str]:
        """The sample names a scrape may carry (histograms' ``_bucket``, ``_sum``, ``_count`` too)."""
        found: set[str] = set()
        for family in self.registry.collect():
            found.add(family.name)
            found.update(sample.name for sample in family.samples)
            if family.type == "counter":
                found.add(f"{family.name}_total")
            elif family.type == "histogram":
                found.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        return frozenset(found)


def scope_of(scope: str) -> str:
    """A 429's scope as a label: one of ``SCOPES``, else "other" (Discord's header is not ours to trust)."""
    return scope if scope in SCOPES else "other"


class _ViewCollector(Collector):
    """Turns the latest ``View`` into metric families at scrape time."""

    def __init__(self, view: Callable[[], View]) -> None:
        self._read = view

    def describe(self) -> Iterable[Metric]:
        return list(self._families(View()))

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self._read())

    @staticmethod
    def _families(view: View) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "discomfy_jobs", "Jobs in the database, by state and workflow.", labels=["state", "workflow"]
        )
        for (state, workflow), count in sorted(view.jobs.items()):
            jobs.add_metric([state, workflow], count)
        yield jobs
        yield GaugeMetricFamily(
            "discomfy_discord_gateway_up", "1 while the Discord gateway is connected.", value=int(view.gateway_up)
        )
        refusals = CounterMetricFamily(
            "discomfy_discord_rate_limited", "Discord 429 answers since start, by scope.", labels=["scope"]
        )
        by_scope = dict.fromkeys(SCOPES, 0)
        for scope, count in view.refusals.items():
            by_scope[scope_of(scope)] = by_scope.get(scope_of(scope), 0) + count
        for scope, count in by_scope.items():
            refusals.add_metric([scope], count)
        yield refusals
        up = GaugeMetricFamily("discomfy_comfyui_up", "1 when the last health check passed.", labels=["server"])
        queue = GaugeMetricFamily(
            "discomfy_comfyui_queue_size", "ComfyUI's own queue (running and pending).", labels=["server"]
        )
        in_flight = GaugeMetricFamily("discomfy_comfyui_jobs_in_flight", "Our jobs on the server.", labels=["server"])
        retries = CounterMetricFamily(
            "discomfy_comfyui_retries", "Calls to the server tried again since start.", labels=["server"]
        )
        reconnects = CounterMetricFamily(
            "discomfy_comfyui_reconnects", "Job websockets that dropped and were opened again.", labels=["server"]
        )
        for server in view.servers:
            up.add_metric([server.server], int(server.up))
            queue.add_metric([server.server], server.queue)
            in_flight.add_metric([server.server], server.in_flight)
            retries.add_metric([server.server], server.retries)
            reconnects.add_metric([server.server], server.reconnects)
        yield from (up, queue, in_flight, retries, reconnects)
        yield GaugeMetricFamily("discomfy_output_files", "Result files on disk.", value=view.output_files)
        yield GaugeMetricFamily("discomfy_output_bytes", "Bytes of result files on disk.", value=view.output_bytes)
