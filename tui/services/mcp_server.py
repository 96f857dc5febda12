"""``tower mcp``: Tower's verbs as MCP tools, for agents that speak MCP (stdio).

Every tool calls the same store verb as the command line, with the same rules
and the same audit events; errors carry the command line's error code, message
and exit code (``{"ok": false, "error": {"code", "message", "exit_code"}}``,
as an MCP tool error), results its ``--json`` data (``{"ok": true, "data"}``).

The server is one agent's session: its identity comes from the server's
environment and working directory, as for the command line (``TOWER_AGENT``,
else ``agent@<worktree>``; ``TOWER_WORKTREE``, else the git worktree of the
current directory), and every lease verb is refused on another agent's lease.
There is no tool that decides an approval: only a person decides.

No tool blocks past a bound. Agents time tool calls out (Codex after 60 s by
default), so ``request_approval`` waits at most a few seconds for a decision
and otherwise answers with the pending request at once; the agent polls
``approval_status``. The store's lock wait is shortened for the same reason.

The MCP SDK (``mcp``, heavy to import) is loaded only by :func:`serve_stdio`:
nothing else in Tower imports this module.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, overload

from core.errors import BadInput, Refused, TimedOut, TowerError, describe_bug
from core.gitrepo import discover
from core.ids import format_id, parse_id
from core.vocab import APPROVAL_KINDS
from tui.services.worktrees import normalize_paths, resolve_worktree

if TYPE_CHECKING:
    from store import Store

SERVER_NAME = "tower"
DEFAULT_APPROVAL_WAIT = 5.0  # seconds request_approval waits for a decision unless told otherwise
MAX_WAIT = 30.0  # the longest any tool waits: half of Codex's default 60 s tool timeout
LOCK_TIMEOUT = 10.0  # a locked store answers exit 5 after this, not after the command line's 30 s
MAX_TEXT_BYTES = 64 * 1024  # one summary, reason, path or key
MAX_DETAIL_BYTES = 64 * 1024  # an approval's detail, encoded
MAX_DETAIL_DEPTH = 32
MAX_PATHS = 1000
ISSUES_URL = "https://github.com/agent-tower/agent-tower/issues"

INSTRUCTIONS = """\
Tower coordinates several coding agents working in git worktrees of one repository.
Work loop: claim_task (you get a lease id like L3 and a fencing token), claim_files for
every file before you edit it (a file another agent holds is refused, naming the holder),
heartbeat the lease well before it expires, and end with finish_task or fail_task.
Before a risky step (deleting data, deploying, force pushing) call request_approval and do
not proceed until approval_status says "approved"; "rejected" means do not do it (the
reason says why). Only a person decides approvals. status shows your leases, claims and
pending requests. Every result is {"ok": true, "data": ...}; an error is
{"ok": false, "error": {"code", "message", "exit_code"}} with the tower command line's
exit codes (2 bad input, 3 not found, 4 refused by the rules, 5 timed out, 6 store unusable).
"""


# -- argument checking (the command line's bounds) -------------------------------------


@overload
def _text(value: Any, name: str, *, required: Literal[True] = True) -> str: ...
@overload
def _text(value: Any, name: str, *, required: bool) -> str | None: ...
def _text(value: Any, name: str, *, required: bool = True) -> str | None:
    if value is None:
        if required:
            raise BadInput(f"missing argument {name}")
        return None
    if not isinstance(value, str):
        raise BadInput(f"{name} must be a string")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadInput(f"{name} is not valid Unicode (it holds a lone surrogate)") from None
    if size > MAX_TEXT_BYTES:
        raise BadInput(f"{name} is {size} bytes long; at most {MAX_TEXT_BYTES}")
    if "\0" in value:
        raise BadInput(f"{name} contains a NUL character")
    return value


def _number(value: Any, name: str, *, low: float, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(f"{name} must be a finite number")
    if not low <= value <= high:
        raise BadInput(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return float(value)


def _token(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**63 - 1:
        raise BadInput("token must be a whole number from 0 to 2^63-1")
    return value


def _id(kind: str, value: Any, name: str, *, required: bool = True) -> int | None:
    if value is None:
        if required:
            raise BadInput(f"missing argument {name}")
        return None
    if isinstance(value, str):
        return parse_id(kind, _text(value, name))
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{name} must be an id like {format_id(kind, 1)}")
    if value < 0:
        raise BadInput(f"invalid {kind} id {value}")
    return parse_id(kind, value)


def _paths(value: Any, name: str, *, required: bool) -> list[str] | None:
    if value is None and not required:
        return None
    if not isinstance(value, list) or (required and not value):
        raise BadInput(f"{name} must be a list of at least one path")
    if len(value) > MAX_PATHS:
        raise BadInput(f"{name} names {len(value)} paths; at most {MAX_PATHS} at a time")
    return [_text(p, name) for p in value]


def _detail(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadInput("detail must be a JSON object")
    depth = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        depth = max(depth, level)
        if depth > MAX_DETAIL_DEPTH:
            raise BadInput(f"detail is nested more than {MAX_DETAIL_DEPTH} levels deep")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((c, level + 1) for c in children if isinstance(c, (dict, list)))
    try:
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    except (ValueError, UnicodeEncodeError):
        raise BadInput("detail must be plain JSON (finite numbers, valid Unicode)") from None
    if size > MAX_DETAIL_BYTES:
        raise BadInput(f"detail is {size} bytes encoded; at most {MAX_DETAIL_BYTES}")
    return value


# -- the tools --------------------------------------------------------------------------


_LEASE = {"type": "string", "description": "Lease id from claim_task, e.g. L3."}
_TOKEN = {"type": "integer", "minimum": 0,
          "description": "Fencing token from claim_task: refused if the lease has moved on."}
_TTL = {"type": "number", "minimum": 1, "description": "Lease time-to-live in seconds."}
_PATHS = {"type": "array", "items": {"type": "string"}, "minItems": 1,
          "description": "Files, relative to the repository root (or absolute inside this worktree)."}
_WAIT = {"type": "number", "minimum": 0, "maximum": MAX_WAIT,
         "description": f"Seconds to wait for a decision before answering (at most {MAX_WAIT:g})."}


def _schema(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    schema: dict[str, Any]
    read_only: bool = False


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("status", "Who you are to Tower (agent, worktree), your active leases with their claims and "
             "scope, your pending approval requests, and how many tasks wait in the queue.",
             _schema({}), read_only=True),
    ToolSpec("claim_task", "Lease the next eligible task (highest priority, then oldest), or the task "
             "named. Answers lease_id, token, task_id, title, scope, expires_at. Error no_task when "
             "nothing is eligible.",
             _schema({"task_id": {"type": "string", "description": "Claim this task (e.g. T3) instead."},
                      "ttl": _TTL})),
    ToolSpec("heartbeat", "Keep your lease alive: push its expiry to now + ttl (default: its own).",
             _schema({"lease_id": _LEASE, "ttl": _TTL, "token": _TOKEN}, ("lease_id",))),
    ToolSpec("claim_files", "Claim files for your lease before editing them, all or nothing. A file "
             "another agent holds, or outside your task's scope, refuses the whole call (exit 4).",
             _schema({"lease_id": _LEASE, "paths": _PATHS, "token": _TOKEN}, ("lease_id", "paths"))),
    ToolSpec("release_files", "Release your lease's claims on these files (all of them without paths).",
             _schema({"lease_id": _LEASE, "paths": _PATHS, "token": _TOKEN}, ("lease_id",))),
    ToolSpec("finish_task", "The task is done: the task becomes done, the lease completed, its claims released.",
             _schema({"lease_id": _LEASE, "token": _TOKEN}, ("lease_id",))),
    ToolSpec("fail_task", "Give up on the task with a reason: it goes back to the queue, or fails for good "
             "after its last attempt. The lease ends and its claims are released.",
             _schema({"lease_id": _LEASE, "reason": {"type": "string", "minLength": 1},
                      "token": _TOKEN}, ("lease_id", "reason"))),
    ToolSpec("request_approval", "Ask a person before a risky step. Answers the request (id like A2) with "
             "its status: 'pending' unless a person decided within wait_seconds; then poll "
             "approval_status. Proceed only once it is 'approved'. With key, asking again returns the "
             "same request.",
             _schema({"kind": {"type": "string", "enum": list(APPROVAL_KINDS)},
                      "summary": {"type": "string", "minLength": 1,
                                  "description": "One line a person can decide on."},
                      "detail": {"type": "object", "description": "The particulars (a JSON object)."},
                      "lease_id": _LEASE,
                      "key": {"type": "string", "description": "Idempotency key."},
                      "wait_seconds": _WAIT}, ("kind", "summary"))),
    ToolSpec("approval_status", "The status of an approval request: pending, approved, rejected (the "
             "reason says why), expired or cancelled. With wait_seconds, waits that long for a decision.",
             _schema({"approval_id": {"type": "string", "description": "e.g. A2"}, "wait_seconds": _WAIT},
                     ("approval_id",)), read_only=True),
)


@dataclass
class Identity:
    """Who the server acts as: from its environment and working directory, as the command line."""

    db: Path
    agent: str | None = None  # TOWER_AGENT / --agent; None: agent@<worktree>
    worktree: str | None = None  # TOWER_WORKTREE / --worktree; None: the git worktree of ``cwd``
    cwd: Path = Path(".")


class TowerTools:
    """Tower's verbs as tool calls over one store connection (opened on first use)."""

    def __init__(self, identity: Identity, *, approval_wait: float = DEFAULT_APPROVAL_WAIT,
                 lock_timeout: float = LOCK_TIMEOUT, clock: Callable[[], float] | None = None) -> None:
        if not (math.isfinite(approval_wait) and 0 <= approval_wait <= MAX_WAIT):
            raise BadInput(f"--approval-wait must be between 0 and {MAX_WAIT:g} seconds")
        self.identity = identity
        self.approval_wait = approval_wait
        self.lock_timeout = lock_timeout
        self.clock = clock
        self._store: Store | None = None
        self._who: tuple[str, str | None, Path | None] | None = None
        self._handlers = {spec.name: getattr(self, f"_tool_{spec.name}") for spec in TOOLS}

    # -- lifecycle ---------------------------------------------------------------------

    async def _open(self):
        if self._store is None:
            from store import Store

            kwargs: dict[str, Any] = {"lock_timeout": self.lock_timeout}
            if self.clock is not None:
                kwargs["clock"] = self.clock
            store = Store(self.identity.db, actor=self.identity.agent or "tower", **kwargs)
            await store.open()  # a missing or broken store is that call's error; the next call retries
            self._store = store
        return self._store

    async def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await store.close()

    async def _who_am_i(self, store) -> tuple[str, str | None, Path | None]:
        """(agent, worktree name, worktree root), registering an unknown worktree as the command
        line does; computed once: a server does not move."""
        if self._who is None:
            worktree, root = await resolve_worktree(store, self.identity.worktree, discover(self.identity.cwd),
                                                    agent=self.identity.agent)
            agent = self.identity.agent or (f"agent@{worktree}" if worktree else "agent")
            self._who = (agent, worktree, root)
        return self._who

    # -- dispatch ----------------------------------------------------------------------

    async def call(self, name: str, arguments: dict[str, Any] | None) -> tuple[bool, dict[str, Any]]:
        """Run one tool; answers ``(ok, body)`` where body is the command line's JSON object."""
        try:
            handler = self._handlers.get(name)
            if handler is None:
                raise BadInput(f"no tool {name!r}: the tools are {', '.join(s.name for s in TOOLS)}",
                               code="unknown_tool")
            args = dict(arguments or {})
            spec = next(s for s in TOOLS if s.name == name)
            unknown = sorted(set(args) - set(spec.schema["properties"]))
            if unknown:
                raise BadInput(f"{name} takes no argument {unknown[0]!r}")
            store = await self._open()
            await store.reap_if_due()
            data = await handler(store, args)
            return True, {"ok": True, "data": data}
        except TowerError as exc:
            error: dict[str, Any] = {"code": exc.code, "message": " ".join(exc.message.split()) or exc.code,
                                     "exit_code": exc.exit_code}
            if exc.data:
                error["data"] = _jsonable(exc.data)
            return False, {"ok": False, "error": error}
        except Exception as exc:  # noqa: BLE001 - the contract: an error object, never a crash
            message = f"internal error: {describe_bug(exc)} (a bug: please report it at {ISSUES_URL})"
            return False, {"ok": False, "error": {"code": "internal", "message": message, "exit_code": 1}}

    # -- the tools (each: the command line's verb, the command line's JSON) ------------

    async def _tool_status(self, store, args) -> dict[str, Any]:
        agent, worktree, root = await self._who_am_i(store)
        pending = [a for a in await store.list_approvals("pending") if a.requested_by == agent]
        return {"agent": agent, "worktree": worktree, "worktree_path": str(root) if root else None,
                "store": str(store.path), "leases": await store.agent_leases(agent),
                "approvals": [a.to_json() for a in pending],
                "queue": await store.queue_counts()}

    async def _tool_claim_task(self, store, args) -> dict[str, Any]:
        from core.rules import DEFAULT_TTL

        tid = _id("task", args.get("task_id"), "task_id", required=False)
        ttl = _number(args.get("ttl"), "ttl", low=-math.inf, high=math.inf)
        agent, worktree, _ = await self._who_am_i(store)
        claim = await store.claim_task(agent=agent, worktree=worktree, task_id=tid,
                                       ttl=DEFAULT_TTL if ttl is None else ttl)
        return claim.to_json()

    async def _tool_heartbeat(self, store, args) -> dict[str, Any]:
        lid = _id("lease", args.get("lease_id"), "lease_id")
        ttl = _number(args.get("ttl"), "ttl", low=-math.inf, high=math.inf)
        agent, _, _ = await self._who_am_i(store)
        return (await store.heartbeat(lid, ttl=ttl, token=_token(args.get("token")), agent=agent)).to_json()

    async def _tool_claim_files(self, store, args) -> dict[str, Any]:
        lid = _id("lease", args.get("lease_id"), "lease_id")
        paths = _paths(args.get("paths"), "paths", required=True)
        token = _token(args.get("token"))
        agent, _, root = await self._who_am_i(store)
        if root is None:  # not inside a worktree: paths are relative to the lease's own
            found = await store.lease_worktree_path(lid)
            root = Path(found) if found else None
        rel = normalize_paths(paths or [], root, self.identity.cwd)
        new = await store.claim_files(lid, rel, token=token, agent=agent)
        return {"lease_id": format_id("lease", lid), "paths": rel, "new": new}

    async def _tool_release_files(self, store, args) -> dict[str, Any]:
        lid = _id("lease", args.get("lease_id"), "lease_id")
        paths = _paths(args.get("paths"), "paths", required=False)
        token = _token(args.get("token"))
        agent, _, root = await self._who_am_i(store)
        rel = None if paths is None else normalize_paths(paths, root, self.identity.cwd, files_only=False)
        released = await store.release_files(lid, rel, token=token, agent=agent)
        return {"lease_id": format_id("lease", lid), "released": released}

    async def _tool_finish_task(self, store, args) -> dict[str, Any]:
        lid = _id("lease", args.get("lease_id"), "lease_id")
        agent, _, _ = await self._who_am_i(store)
        return (await store.complete_task(lid, token=_token(args.get("token")), agent=agent)).to_json()

    async def _tool_fail_task(self, store, args) -> dict[str, Any]:
        lid = _id("lease", args.get("lease_id"), "lease_id")
        reason = _text(args.get("reason"), "reason")
        agent, _, _ = await self._who_am_i(store)
        lease = await store.fail_task(lid, reason or "", token=_token(args.get("token")), agent=agent)
        status, _attempts, _max = await store.task_progress(lease.task_id)
        return lease.to_json() | {"task_status": status}

    async def _tool_request_approval(self, store, args) -> dict[str, Any]:
        kind = _text(args.get("kind"), "kind")
        if kind not in APPROVAL_KINDS:
            raise BadInput(f"unknown approval kind {kind!r}: use one of {', '.join(APPROVAL_KINDS)}")
        summary = _text(args.get("summary"), "summary")
        detail = _detail(args.get("detail"))
        lid = _id("lease", args.get("lease_id"), "lease_id", required=False)
        key = _text(args.get("key"), "key", required=False)
        wait = _number(args.get("wait_seconds"), "wait_seconds", low=0, high=MAX_WAIT)
        agent, worktree, _ = await self._who_am_i(store)
        approval = await store.request_approval(kind=kind, summary=summary or "", detail=detail, lease_id=lid,
                                                key=key, requested_by=agent, worktree=worktree)
        if key is not None and (approval.requested_by, approval.kind, approval.summary, approval.detail) != (
                agent, kind, summary, detail):
            # the key names another request (maybe another agent's, maybe already approved):
            # answering with its decision would let an agent borrow a decision made for something else
            raise Refused(f"key {key!r} belongs to {format_id('approval', approval.id)}, a different request:"
                          " use a new key for a new request", code="key_reused",
                          data={"approval_id": format_id("approval", approval.id)})
        return await self._answer(store, approval, self.approval_wait if wait is None else wait)

    async def _tool_approval_status(self, store, args) -> dict[str, Any]:
        aid = _id("approval", args.get("approval_id"), "approval_id")
        wait = _number(args.get("wait_seconds"), "wait_seconds", low=0, high=MAX_WAIT)
        return await self._answer(store, await store.get_approval(aid), wait or 0.0)

    async def _answer(self, store, approval, wait: float) -> dict[str, Any]:
        """The approval as it is once decided, or after ``wait`` seconds; a wait never expires
        the request (the agent polls again)."""
        if approval.status == "pending" and wait > 0:
            try:
                approval = await store.wait_for_decision(approval.id, timeout=wait, expire=False)
            except TimedOut:
                approval = await store.get_approval(approval.id)
        return approval.to_json()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# -- serving ---------------------------------------------------------------------------


async def serve_stdio(tools: TowerTools, *, version: str = "") -> None:
    """Serve ``tools`` over stdin/stdout until the client closes the connection."""
    import mcp.types as types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    listed = [
        types.Tool(name=spec.name, description=spec.description, input_schema=spec.schema,
                   annotations=types.ToolAnnotations(read_only_hint=spec.read_only, destructive_hint=False,
                                                     open_world_hint=False))
        for spec in TOOLS
    ]

    async def on_list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def on_call_tool(ctx, params) -> types.CallToolResult:
        ok, body = await tools.call(params.name, params.arguments)
        return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(body, ensure_ascii=False))],
                                    structured_content=body, is_error=not ok)

    server = Server(SERVER_NAME, version=version, instructions=INSTRUCTIONS,
                    on_list_tools=on_list_tools, on_call_tool=on_call_tool)
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await tools.close()


def version() -> str:
    try:
        from importlib.metadata import version as dist_version

        return dist_version("agent-tower")
    except Exception:  # noqa: BLE001 - not installed as a distribution (tests run from the tree)
        return "0"


