"""The typed shapes of the workflows package: kinds, parameters, targets, workflows and bound graphs.

How it works: everything here is a frozen dataclass or an enum; the other modules build them (``manifest``,
``detect``), read them (``bind``, ``validate``) or index them (``registry``). A ``Workflow`` holds its API graph
as a template (strings may still contain ``{models.ROLE}``); ``bind`` fills it into a fresh copy per job.

Never: hold a mutable graph that a job could change for the next one (``Workflow.graph`` is only ever copied).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from discomfy.errors import ConfigError

#: ComfyUI's API format: node id → {"class_type": str, "inputs": {name: literal | [node_id, output_index]}, ...}
Graph = dict[str, dict[str, Any]]


class WorkflowError(ConfigError):
    """A workflow file or its manifest cannot be used; the text names the file and says how to fix it."""

    def __init__(self, problem: str, file: str | None = None) -> None:
        super().__init__([problem])
        self.problem = problem
        #: The file at fault (``name.toml`` for a manifest mistake), when the raiser knows it.
        self.file = file


class Kind(StrEnum):
    """What a workflow makes, which decides the command or button that uses it."""

    IMAGE = "image"
    UPSCALE = "upscale"
    VIDEO = "video"


class ParamType(StrEnum):
    INT = "int"
    FLOAT = "float"
    STR = "str"
    BOOL = "bool"
    CHOICE = "choice"
    #: The name of an image already uploaded to the server (``/upload/image``), for a LoadImage node.
    IMAGE = "image"


@dataclass(frozen=True)
class Target:
    """One node input a parameter writes to; numbers are multiplied by ``multiply`` on the way in."""

    node: str
    input: str
    multiply: float | None = None

    def __str__(self) -> str:
        return f"{self.node}.{self.input}"


@dataclass(frozen=True)
class Param:
    """A value the bot passes into the workflow: typed, bounded, bound to one or more node inputs."""

    name: str
    type: ParamType
    targets: tuple[Target, ...]
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    #: Integers must be ``minimum + k * step`` (e.g. latent sizes in multiples of 8).
    step: int | None = None
    choices: tuple[str, ...] = ()
    required: bool = False
    #: For strings: the longest accepted value.
    max_length: int | None = None
    description: str = ""

    @property
    def is_seed(self) -> bool:
        """The parameter called ``seed`` is chosen by us when left empty, and recorded."""
        return self.name == "seed"


@dataclass(frozen=True)
class Stage:
    """An optional part of a workflow (``[stages.NAME]`` in its manifest), run only when a server has its models.

    Off, its ``nodes`` are cut out of the graph and every input linked to ``bypass.node``'s output takes what
    feeds ``bypass.input`` instead (a frame interpolation's consumers get the frames it would have
    interpolated). On, ``fps`` (an input outside the stage) is multiplied by ``multiplier`` (an input inside it),
    so a video with ``multiplier`` times the frames lasts as long.
    """

    name: str
    nodes: frozenset[str]
    bypass: Target
    fps: Target | None = None
    multiplier: Target | None = None
    description: str = ""


@dataclass(frozen=True)
class Workflow:
    """A loaded workflow: its template graph and how the bot's parameters reach it."""

    name: str
    kind: Kind
    graph: Mapping[str, Mapping[str, Any]]
    params: Mapping[str, Param]
    #: Node ids whose results are the job's outputs (the save nodes).
    outputs: tuple[str, ...]
    description: str = ""
    #: Another workflow to use when no server has this one's models (e.g. a plain resize for ``upscale``).
    fallback: str | None = None
    #: The default workflow of its kind.
    default: bool = False
    #: True when the parameters were detected from the graph rather than read from a manifest.
    detected: bool = False
    source: Path | None = None
    #: Roles named as ``{models.ROLE}`` anywhere in the graph or the manifest.
    model_roles: frozenset[str] = frozenset()
    #: Optional stages by name (``Stage``); a job records whether each ran as a bool value of that name.
    stages: Mapping[str, Stage] = field(default_factory=dict)
    #: A video workflow whose first frame is its input picture can continue a video from its last frame (the
    #: Extend button); the most frames an extended video may have in all. None: it cannot extend.
    extend_max_frames: int | None = None
    #: Nodes whose progress counts frames, beyond ComfyUI's own (``[frame_progress.NODE]``): node id → the input
    #: holding the node's multiplier when its ticks are new frames only (an interpolation), else None.
    frame_progress: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class BoundGraph:
    """A graph ready for ``POST /prompt``: a fresh copy with the values written in and the models filled."""

    workflow: str
    graph: Graph
    #: Every parameter's final value (defaults applied, seed chosen), to record with the job and reproduce it.
    values: Mapping[str, Any]
    #: Model files the graph loads, for routing the job to a server that has them.
    models: frozenset[str]
    outputs: tuple[str, ...]
    #: Values we chose rather than the user (the seed), so a reply can say "seed 1234".
    chosen: Mapping[str, Any] = field(default_factory=dict)
    #: The workflow's ``frame_progress`` for the nodes this graph kept (a stage cut out takes its own along).
    frame_nodes: Mapping[str, str | None] = field(default_factory=dict)
