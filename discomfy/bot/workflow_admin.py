"""``/workflow``: add a workflow from Discord (admins), list them, show one, remove or reload them (admins).

How it works: ``/workflow add name file [kind] [description]`` is checked on our side — an admin is a member with
one of ``[workflow_uploads] admin_roles``, or, with none configured, whose interaction ``member.permissions``
has Manage Server (1 << 5); the command is visible to all, so visibility is never the check. The name
(``uploads.check_name``, not shipped, not already added) and the attachment's ``size`` (Discord's metadata) are
checked before deferring; then the file is downloaded (bounded again while reading), read and checked against
the allow-list made from every healthy server's ``/object_info`` (``uploads.read_upload``), its parameters
detected, and it is validated against each server: when none can run it, the upload is refused with the
reasons. Otherwise a ``Draft`` is kept (``uploads.Drafts``: one per admin, expiring) and the admin gets an
ephemeral summary with Confirm / Adjust / Cancel. Those buttons and the Adjust menus (parameter → node → input)
come back through the client's panel routing by custom_id (``dc1:wfok:<draft id>`` …) to ``press``, which
applies the channel and role allow-lists like every command and button, then answers only the draft's uploader
in its guild, and only while they are still an admin there (checked again on every press). Confirm writes the
graph and our manifest to that server's uploads folder (``upload_files.UploadFolder``, in a thread) and reloads
the registry in place (``reload``: the app's ``Stack.reload_workflows``), so the workflow is in ``/generate``'s
autocomplete at once. An upload belongs to the server it was added in: list, info, remove and their
autocomplete see the registry as that server does (``Registry.for_guild``: another server's upload does not
exist there), and names are one namespace (another server's name is refused as taken). ``/workflow remove``
deletes only this server's uploads (never a shipped file, never another server's) and reloads: jobs already
queued keep the graph they were bound with. The servers' ``/object_info`` come from an ``ObjectInfoCache``
(kept ``OBJECT_INFO_TTL`` seconds, one fetch shared by concurrent callers), and checking every workflow against
them runs in a thread.

nextcord evaluates the callbacks' annotations at runtime, so every name in them is imported for real.

Never: let a non-admin add, remove or reload; let anyone but the uploader (still an admin) touch a draft; show,
remove or name-check another server's upload as if it were this one's; write outside the uploads folder;
answer later than Discord's 3 seconds (defer before downloading or asking the servers).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import aiohttp
import nextcord
from nextcord import Interaction, SlashOption

from discomfy.bot.attachments import download
from discomfy.bot.custom_ids import ComponentAction, ComponentRef, encode
from discomfy.bot.failures import report_failure
from discomfy.bot.interactions import GatedCog, actor_of
from discomfy.bot.object_info_cache import ObjectInfoCache
from discomfy.bot.render_workflows import (
    draft_embed,
    info_embed,
    input_options,
    list_embed,
    node_options,
    param_options,
    problems_text,
)
from discomfy.comfy.pool import ServerPool
from discomfy.config import Settings, redact_url
from discomfy.errors import BadInputError, ComfyError, PermissionDeniedError, UserError
from discomfy.jobs.admission import Limits
from discomfy.jobs.service import JobService
from discomfy.workflows import Kind, Target, Workflow, WorkflowError, detect_workflow, validate
from discomfy.workflows.objectinfo import parse_object_info
from discomfy.workflows.upload_files import UploadFolder
from discomfy.workflows.uploads import (
    BINDABLE,
    Draft,
    Drafts,
    UploadRules,
    allowed_nodes,
    bindable_inputs,
    bindable_nodes,
    check_name,
    manifest_text,
    read_upload,
    rebind,
    unbound_file_inputs,
    with_kind,
)

log = logging.getLogger(__name__)

#: Discord's permission bit for Manage Server (Discord developer docs, Topics → Permissions: MANAGE_GUILD).
MANAGE_GUILD = 1 << 5
#: How long a server's ``/object_info`` (several MB; it changes when nodes or models are installed) is reused.
OBJECT_INFO_TTL = 60.0
PANEL_ACTIONS = (
    ComponentAction.WF_CONFIRM,
    ComponentAction.WF_ADJUST,
    ComponentAction.WF_CANCEL,
    ComponentAction.WF_PARAM,
    ComponentAction.WF_NODE,
    ComponentAction.WF_INPUT,
)
Reload = Callable[[], Awaitable[list[str]]]
ServerInfo = tuple[str, Mapping[str, Any]]


class WorkflowCommands(GatedCog):
    def __init__(
        self,
        service: JobService,
        pool: ServerPool,
        limits: Limits,
        settings: Settings,
        session: aiohttp.ClientSession,
        *,
        reload: Reload,
        drafts: Drafts | None = None,
    ) -> None:
        self.service = service
        self.pool = pool
        self.limits = limits
        self.settings = settings
        self.uploads = settings.workflow_uploads
        self.session = session
        self.reload = reload
        self.drafts = drafts or Drafts()
        self.folder = UploadFolder(settings.storage.uploaded_workflows_dir, settings.workflows_dir)
        self.object_infos = ObjectInfoCache(self._fetch_object_info, OBJECT_INFO_TTL)

    def panels(self) -> dict[ComponentAction, Callable[[Interaction[Any], ComponentRef], Awaitable[None]]]:
        return dict.fromkeys(PANEL_ACTIONS, self.press)

    # -- who may ----------------------------------------------------------------------------------------------

    def is_admin(self, interaction: Interaction[Any]) -> bool:
        if not interaction.guild_id:
            return False
        if self.uploads.admin_roles:
            return bool(actor_of(interaction).role_ids & set(self.uploads.admin_roles))
        permissions = interaction.permissions
        return permissions is not None and bool(permissions.value & MANAGE_GUILD)

    def check_admin(self, interaction: Interaction[Any], doing: str) -> None:
        if not self.is_admin(interaction):
            who = "members with a workflow admin role" if self.uploads.admin_roles else "members with Manage Server"
            raise PermissionDeniedError(f"Only {who} can {doing}.")

    # -- commands ---------------------------------------------------------------------------------------------

    @nextcord.slash_command(name="workflow", description="Workflows: list and info; admins add, remove and reload.")
    async def workflow(self, interaction: Interaction[Any]) -> None:
        """The group; Discord only ever runs its subcommands."""

    @workflow.subcommand(name="add", description="(Admins) Add a ComfyUI workflow exported in API format.")
    async def add(
        self,
        interaction: Interaction[Any],
        name: str = SlashOption(description="Its name: lowercase letters, digits, _ and -", max_length=64),
        file: nextcord.Attachment = SlashOption(description="The JSON from ComfyUI's Workflow → Export (API)"),
        kind: str | None = SlashOption(
            description="What it makes (default: detected)", required=False, choices=[k.value for k in Kind]
        ),
        description: str | None = SlashOption(
            description="One line for /workflow list", required=False, max_length=200
        ),
    ) -> None:
        try:
            await self._add(interaction, name, file, kind, description)
        except Exception as exc:
            await report_failure(interaction, exc, doing="/workflow add")

    async def _add(
        self,
        interaction: Interaction[Any],
        name: str,
        file: nextcord.Attachment,
        kind: str | None,
        description: str | None,
    ) -> None:
        self.check_admin(interaction, "add workflows")
        guild_id = interaction.guild_id or 0
        name = check_name(name)
        if name in self.service.registry.for_guild(guild_id).workflows:
            raise BadInputError(f"There is already a workflow called `{name}`; pick another name.")
        if name in self.service.registry.workflows:  # another server's upload: one namespace
            raise BadInputError(f"The name `{name}` is taken; pick another name.")
        refusal = await asyncio.to_thread(self.folder.taken, name, guild_id)
        if refusal is not None:
            raise BadInputError(refusal)
        limit = self.uploads.max_file_bytes
        if file.size > limit:  # Discord's metadata: refused before anything is downloaded
            raise BadInputError(
                f"`{_attachment_name(file)}` is {file.size / 1024:.0f} KiB; a workflow export may be at most "
                f"{limit // 1024} KiB."
            )
        await interaction.response.defer(ephemeral=True)
        infos = await self._object_infos()
        if not infos:
            raise UserError("No ComfyUI server answered, so the upload cannot be checked; try again later.")
        data = await download(self.session, file.url, max_bytes=limit, what="the workflow file")
        allowed = allowed_nodes((info for _, info in infos), self.uploads.extra_nodes)
        rules = UploadRules(limit, self.uploads.max_nodes, allowed)
        graph = read_upload(data, name, rules)
        specs = await asyncio.to_thread(parse_object_info, infos[0][1])  # several MB from a real server
        try:
            workflow = detect_workflow(graph, name, specs)
        except WorkflowError as exc:
            raise BadInputError(exc.problem[0].upper() + exc.problem[1:]) from None
        workflow = with_kind(workflow, Kind(kind) if kind else None)
        workflow = replace(workflow, description=" ".join((description or "").split()))
        _refuse_server_files(workflow, specs)
        runs_on, problems = await asyncio.to_thread(self._where, workflow, infos)
        if not runs_on:
            raise BadInputError("None of our ComfyUI servers can run this workflow:\n" + problems_text(problems))
        actor = actor_of(interaction)
        draft = Draft(
            id=self.drafts.new_id(),
            owner_id=actor.user_id,
            guild_id=guild_id,
            workflow=workflow,
            created_at=time.monotonic(),
            servers=tuple(runs_on),
        )
        self.drafts.add(draft)
        log.info(
            "workflow upload %s (%s) by %s in guild %s waits for confirmation", name, draft.id, actor.user_id, guild_id
        )
        await interaction.edit_original_message(embed=_embed(draft_embed(draft, runs_on)), view=_summary_view(draft))

    @workflow.subcommand(name="list", description="The workflows: what they make and where they can run.")
    async def list_(self, interaction: Interaction[Any]) -> None:
        try:
            await interaction.response.defer(ephemeral=True)
            registry = self.service.registry.for_guild(interaction.guild_id)
            infos = await self._object_infos()
            workflows = [registry.workflows[n] for n in registry.names()]
            # validate() reads each server's whole /object_info: every workflow against every server, in a thread.
            runs_on = await asyncio.to_thread(lambda: {w.name: self._where(w, infos)[0] for w in workflows})
            embed = list_embed(workflows, runs_on, registry.uploaded)
            await interaction.edit_original_message(embed=_embed(embed))
        except Exception as exc:
            await report_failure(interaction, exc, doing="/workflow list")

    @workflow.subcommand(name="info", description="One workflow: its parameters and bounds, models and servers.")
    async def info(
        self,
        interaction: Interaction[Any],
        name: str = SlashOption(description="The workflow", max_length=64),
    ) -> None:
        try:
            registry = self.service.registry.for_guild(interaction.guild_id)
            workflow = registry.find(name.strip())
            if workflow is None:
                raise BadInputError(_unknown(name, registry.names()))
            await interaction.response.defer(ephemeral=True)
            infos = await self._object_infos()
            runs_on, problems = await asyncio.to_thread(self._where, workflow, infos)
            models = sorted(registry.needed_models(workflow.name))
            embed = info_embed(workflow, models, runs_on, problems, workflow.name in registry.uploaded)
            await interaction.edit_original_message(embed=_embed(embed))
        except Exception as exc:
            await report_failure(interaction, exc, doing="/workflow info")

    @workflow.subcommand(name="remove", description="(Admins) Remove a workflow added from Discord.")
    async def remove(
        self,
        interaction: Interaction[Any],
        name: str = SlashOption(description="The workflow added with /workflow add", max_length=64),
    ) -> None:
        try:
            self.check_admin(interaction, "remove workflows")
            guild_id = interaction.guild_id or 0
            name = check_name(name)
            registry = self.service.registry.for_guild(guild_id)
            if name in registry.workflows and name not in registry.uploaded:
                raise BadInputError(f"`{name}` ships with the bot; only workflows added with /workflow add can go.")
            if name not in registry.uploaded:  # another server's upload is not there for this one
                raise BadInputError(_unknown(name, sorted(registry.uploaded)))
            await interaction.response.defer(ephemeral=True)
            if not await asyncio.to_thread(lambda: self.folder.remove(name, guild_id=guild_id)):
                raise BadInputError(_unknown(name, sorted(registry.uploaded)))
            problems = await self.reload()
            who = interaction.user.id if interaction.user else "?"
            log.info("workflow %s removed by %s in guild %s", name, who, guild_id)
            text = f"Removed `{name}`. Jobs already queued with it still finish."
            await interaction.edit_original_message(content=text + _problems_note(problems))
        except Exception as exc:
            await report_failure(interaction, exc, doing="/workflow remove")

    @workflow.subcommand(name="reload", description="(Admins) Read the workflows again and report problems.")
    async def reload_(self, interaction: Interaction[Any]) -> None:
        try:
            self.check_admin(interaction, "reload workflows")
            await interaction.response.defer(ephemeral=True)
            self.object_infos.forget()  # nodes or models installed since: the next list, info or add sees them
            problems = await self.reload()
            names = ", ".join(self.service.registry.for_guild(interaction.guild_id).names()) or "none"
            text = f"Workflows reloaded: {names}."
            await interaction.edit_original_message(content=text + _problems_note(problems))
        except Exception as exc:
            await report_failure(interaction, exc, doing="/workflow reload")

    @info.on_autocomplete("name")
    async def info_name(self, interaction: Interaction[Any], name: str) -> None:
        typed = (name or "").lower()
        names = [n for n in self.service.registry.for_guild(interaction.guild_id).names() if typed in n]
        await interaction.response.send_autocomplete(names[:25])

    @remove.on_autocomplete("name")
    async def remove_name(self, interaction: Interaction[Any], name: str) -> None:
        typed = (name or "").lower()
        names = [n for n in sorted(self.service.registry.for_guild(interaction.guild_id).uploaded) if typed in n]
        await interaction.response.send_autocomplete(names[:25])

    # -- the summary's buttons and menus ---------------------------------------------------------------------

    async def press(self, interaction: Interaction[Any], ref: ComponentRef) -> None:
        try:
            # The allow-lists hold for every button and menu, as for the commands (no rate limit: a press here
            # starts no job); then only the draft's own uploader, in its guild, gets any further.
            self.limits.check_place(actor_of(interaction))
            # Still an admin of this server, on every press: a role taken away since the upload ends the draft.
            self.check_admin(interaction, "add workflows")
            user_id = interaction.user.id if interaction.user else 0
            if ref.action is ComponentAction.WF_CONFIRM:
                draft = self.drafts.pop(ref.job_id, user_id, interaction.guild_id)
                await self._confirm(interaction, draft)
                return
            if ref.action is ComponentAction.WF_CANCEL:
                draft = self.drafts.pop(ref.job_id, user_id, interaction.guild_id)
                await interaction.response.edit_message(
                    content=f"Cancelled: `{draft.name}` was not added.", embed=None, view=None
                )
                return
            draft = self.drafts.get(ref.job_id, user_id, interaction.guild_id)
            picked = _picked(interaction)
            if ref.action is ComponentAction.WF_ADJUST:
                draft = replace(draft, param=None, node=None)
                view = _select_view(draft, ComponentAction.WF_PARAM, "Which parameter?", param_options(draft))
                text = "Pick the parameter to bind to another node input."
            elif ref.action is ComponentAction.WF_PARAM:
                if picked not in BINDABLE:
                    raise BadInputError("Pick one of the parameters in the menu.")
                draft = replace(draft, param=picked, node=None)
                nodes = bindable_nodes(draft.workflow, picked)
                if not nodes:
                    raise BadInputError(f"No node of this workflow has an input that could take {picked}.")
                view = _select_view(draft, ComponentAction.WF_NODE, "Which node?", node_options(draft.workflow, nodes))
                text = f"Bind **{picked}** to an input of which node?"
            elif ref.action is ComponentAction.WF_NODE:
                pname = draft.param
                if pname is None or picked not in draft.workflow.graph:
                    raise BadInputError("Pick a parameter first, then one of the nodes in the menu.")
                draft = replace(draft, node=picked)
                names = bindable_inputs(draft.workflow, pname, picked)
                options = input_options(draft.workflow, picked, names)
                view = _select_view(draft, ComponentAction.WF_INPUT, "Which input?", options)
                text = f"Bind **{draft.param}** to which input of node {picked}?"
            else:
                if draft.param is None or draft.node is None:
                    raise BadInputError("Pick a parameter and a node first.")
                target = _target(draft, picked)
                specs = await self._specs()
                workflow = rebind(draft.workflow, draft.param, target, specs)
                draft = replace(draft, workflow=workflow, param=None, node=None)
                self.drafts.put(draft)
                embed = _embed(draft_embed(draft, draft.servers))
                await interaction.response.edit_message(content=None, embed=embed, view=_summary_view(draft))
                return
            self.drafts.put(draft)
            await interaction.response.edit_message(content=text, embed=None, view=view)
        except Exception as exc:
            await report_failure(interaction, exc, doing=f"the {ref.action} workflow control")

    async def _confirm(self, interaction: Interaction[Any], draft: Draft) -> None:
        specs = await self._specs()
        if specs is not None:  # Adjust may have moved the image parameter off a LoadImage
            _refuse_server_files(draft.workflow, specs)
        await interaction.response.defer()
        manifest = manifest_text(draft.workflow, added_by=draft.owner_id)
        graph = {k: dict(v) for k, v in draft.workflow.graph.items()}
        await asyncio.to_thread(lambda: self.folder.save(draft.name, graph, manifest, guild_id=draft.guild_id))
        problems = await self.reload()
        if draft.name not in self.service.registry.for_guild(draft.guild_id).uploaded:
            await asyncio.to_thread(lambda: self.folder.remove(draft.name, guild_id=draft.guild_id))
            ours = [p for p in problems if draft.name in p] or problems
            await interaction.edit_original_message(
                content=f"`{draft.name}` could not be loaded, so it was not added:\n" + problems_text(ours),
                embed=None,
                view=None,
            )
            return
        log.info("workflow %s added by %s in guild %s", draft.name, draft.owner_id, draft.guild_id)
        use = "/generate workflow:" if draft.workflow.kind is Kind.IMAGE else "the buttons that use "
        await interaction.edit_original_message(
            content=f"Added `{draft.name}` ({draft.workflow.kind.value}). Try it: {use}{draft.name}",
            embed=None,
            view=None,
        )

    # -- servers ----------------------------------------------------------------------------------------------

    async def _object_infos(self) -> list[ServerInfo]:
        """Every healthy server's ``/object_info`` (by its redacted URL); a server that fails is left out."""

        async def one(url: str) -> ServerInfo | None:
            try:
                return redact_url(url), await self.object_infos.get(url)
            except ComfyError as exc:
                log.info("could not read /object_info of %s: %s", redact_url(url), exc)
                return None

        found = await asyncio.gather(*(one(s.url) for s in self.pool.servers if s.healthy))
        return [f for f in found if f is not None]

    async def _fetch_object_info(self, url: str) -> Mapping[str, Any]:
        return await self.pool.http(url).object_info()

    async def _specs(self) -> Mapping[str, Any] | None:
        infos = await self._object_infos()
        return await asyncio.to_thread(parse_object_info, infos[0][1]) if infos else None

    def _where(self, workflow: Workflow, infos: Sequence[ServerInfo]) -> tuple[list[str], list[str]]:
        runs_on: list[str] = []
        problems: list[str] = []
        for label, info in infos:
            found = validate(workflow, info, self.settings.models)
            if found:
                problems += [f"{label}: {p}" for p in found]
            else:
                runs_on.append(label)
        return runs_on, problems


def _refuse_server_files(workflow: Workflow, specs: Mapping[str, Any]) -> None:
    """An upload reads only the picture a user gives, never a file already on a server (someone else's picture
    or result): every input naming a server file must be written by the image parameter (``unbound_file_inputs``)."""
    unbound = unbound_file_inputs(workflow, specs)
    if unbound:
        raise BadInputError(
            "This workflow reads a file already on the server ("
            + ", ".join(unbound[:3])
            + "). An upload may read only the picture a user gives: bind that input to the image parameter "
            "(Adjust), or remove the node in ComfyUI and export again."
        )


def _embed(data: dict[str, Any]) -> nextcord.Embed:
    return nextcord.Embed.from_dict(data)


def _carrier() -> nextcord.ui.View:
    # Only a carrier for the components: presses come to the client's panel routing by custom_id. A view nextcord
    # keeps (``prevent_update``) would answer every press itself first.
    return nextcord.ui.View(timeout=None, auto_defer=False, prevent_update=False)


def _summary_view(draft: Draft) -> nextcord.ui.View:
    view = _carrier()
    for action, label, style in (
        (ComponentAction.WF_CONFIRM, "Confirm", nextcord.ButtonStyle.success),
        (ComponentAction.WF_ADJUST, "Adjust", nextcord.ButtonStyle.secondary),
        (ComponentAction.WF_CANCEL, "Cancel", nextcord.ButtonStyle.danger),
    ):
        view.add_item(nextcord.ui.Button(label=label, style=style, custom_id=encode(action, draft.id)))
    return view


def _select_view(
    draft: Draft, action: ComponentAction, placeholder: str, options: Sequence[tuple[str, str, str]]
) -> nextcord.ui.View:
    view = _carrier()
    view.add_item(
        nextcord.ui.StringSelect(
            custom_id=encode(action, draft.id),
            placeholder=placeholder,
            options=[nextcord.SelectOption(label=lab, value=val, description=text) for lab, val, text in options],
        )
    )
    view.add_item(
        nextcord.ui.Button(
            label="Cancel upload",
            style=nextcord.ButtonStyle.danger,
            custom_id=encode(ComponentAction.WF_CANCEL, draft.id),
        )
    )
    return view


def _picked(interaction: Interaction[Any]) -> str:
    data: Any = interaction.data if isinstance(interaction.data, dict) else {}
    values = data.get("values")
    return str(values[0])[:100] if isinstance(values, list) and values else ""


def _target(draft: Draft, picked: str) -> Target:
    assert draft.node is not None
    return Target(draft.node, picked)


def _attachment_name(file: nextcord.Attachment) -> str:
    return "".join(c for c in file.filename[:60] if c.isalnum() or c in "._- ") or "the file"


def _unknown(name: str, names: Sequence[str]) -> str:
    shown = "".join(c for c in name[:40] if c.isalnum() or c in "_-") or "?"
    return f"There is no such workflow `{shown}`; there are: {', '.join(names) or 'none'}."


def _problems_note(problems: Sequence[str]) -> str:
    return "" if not problems else "\nProblems found:\n" + problems_text(problems)
