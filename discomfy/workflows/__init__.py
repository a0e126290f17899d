"""Workflows: ComfyUI API-format graphs, their manifests, parameter binding and validation against a server.

The public API is re-exported here; the modules behind it are ``model`` (the frozen types), ``graph`` (reading
API graphs), ``manifest`` (the TOML beside a workflow), ``detect`` (parameters of a workflow without one),
``bind`` (a job's values into a fresh copy), ``validate`` (against ``/object_info``) and ``registry`` (a folder
of them). Everything here is pure: no asyncio, aiohttp, websockets, nextcord or sqlite, and no I/O except
``load_workflows`` / ``load_workflow`` reading files.
"""

from discomfy.workflows.bind import SEED_RANGE, bind, coerce
from discomfy.workflows.detect import detect_workflow
from discomfy.workflows.graph import model_files, parse_api_graph
from discomfy.workflows.manifest import parse_manifest
from discomfy.workflows.model import BoundGraph, Graph, Kind, Param, ParamType, Target, Workflow, WorkflowError
from discomfy.workflows.registry import Registry, load_workflow, load_workflows
from discomfy.workflows.validate import models_on_server, validate

__all__ = [
    "SEED_RANGE",
    "BoundGraph",
    "Graph",
    "Kind",
    "Param",
    "ParamType",
    "Registry",
    "Target",
    "Workflow",
    "WorkflowError",
    "bind",
    "coerce",
    "detect_workflow",
    "load_workflow",
    "load_workflows",
    "model_files",
    "models_on_server",
    "parse_api_graph",
    "parse_manifest",
    "validate",
]
