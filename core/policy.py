"""The hook's policy: ``tower/policy.toml`` beside the database.

The policy says, for every tool call Claude Code is about to make, whether
Tower allows it, denies it, asks a person (an Approval the hook waits on), or
hands it to Claude Code's own permission prompt. The file is TOML, validated
with pydantic; a bad file is a :class:`PolicyError` naming the line, never
silently ignored. The format is documented in ``docs/approvals.md`` and in the
comments of :data:`DEFAULT_POLICY`, which ``tower init`` writes.

Matching, in short: ``[[rule]]`` tables are tried top to bottom and the first
one whose conditions all match decides. A Bash command is judged on what the
shell would run (``core/shell.py``): each of its simple commands, quotes
removed, must be allowed on its own; more views of it (without wrappers such
as ``command``/``env``/``sudo``, with the program's directory dropped, the
commands inside substitutions and ``sh -c`` strings, globs expanded) can only
make the answer stricter; and anything the reading did not understand is never
allowed by a rule alone. Tower's person-only verbs (deciding approvals,
acknowledging conflicts, rebaselining the watcher, changing the hook) are
denied whatever the file says.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
from pathlib import Path

from core.display import ellipsize
from core.errors import BadInput
from core.gitrepo import POLICY_NAME
from core.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# how strict a decision is, to combine the answers for the parts of a command
STRICTNESS = {"allow": 0, "prompt": 1, "ask": 2, "deny": 3}

DEFAULT_ASK_TIMEOUT = 540.0  # below Claude Code's default hook timeout of 600 s
CLAUDE_HOOK_TIMEOUT = 600  # Claude Code's default timeout for a command hook, seconds

# The validated form of a policy text is kept beside it, keyed by a digest of
# the text: the hook runs on every tool call, and importing pydantic and
# building the schema costs more than the rest of a policy-only call. Bump the
# format whenever the schema or its normal form changes.
CACHE_NAME = ".policy.cache.json"
_CACHE_FORMAT = 2

# A Bash command longer than this is denied unread: checking it is linear, but a
# rule's regex may not be, and the hook must answer within its deadline.
MAX_COMMAND_LENGTH = 64 * 1024

# Actor names that belong to agents: they never decide approvals, acknowledge
# conflicts or rebaseline the watcher (Tower's own defaults for unnamed agents).
DEFAULT_AGENT_NAMES = ("agent@*", "claude-code", "claude-code:*")


class PolicyError(BadInput):
    """A policy file that cannot be used; the message is one line naming the file and line."""

    code = "bad_policy"

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        super().__init__(message, data={"path": path, "line": line})
        self.path = path
        self.line = line


# -- the file's schema -------------------------------------------------------------


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


@functools.cache
def schema():
    """The pydantic model of a policy file, built on first use (see CACHE_NAME for why)."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field, field_validator

    Decision = Literal["allow", "deny", "ask", "prompt"]

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    class RuleSpec(Strict):
        tool: list[str] = Field(default_factory=lambda: ["*"])
        command: list[str] = Field(default_factory=list)
        command_regex: list[str] = Field(default_factory=list)
        paths: list[str] = Field(default_factory=list)
        decision: Decision
        reason: str | None = None

        _listify = field_validator("tool", "command", "command_regex", "paths", mode="before")(_as_list)

        @field_validator("tool", "command", "paths")
        @classmethod
        def _non_empty(cls, values: list[str]) -> list[str]:
            for v in values:
                if not v.strip():
                    raise ValueError("patterns must not be empty")
            return values

        @field_validator("command_regex")
        @classmethod
        def _compiles(cls, values: list[str]) -> list[str]:
            for v in values:
                try:
                    re.compile(v)
                except re.error as exc:
                    raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
            return values

        @field_validator("paths")
        @classmethod
        def _globs(cls, values: list[str]) -> list[str]:
            from core.scope import ScopeError, validate_glob

            out = []
            for v in values:
                try:
                    out.append(validate_glob(v))
                except ScopeError as exc:
                    raise ValueError(str(exc)) from None
            return out

    class AskSpec(Strict):
        timeout: float = Field(default=DEFAULT_ASK_TIMEOUT, gt=0, le=7 * 24 * 3600)
        on_timeout: Literal["deny", "ask"] = "deny"

    class WritesSpec(Strict):
        without_lease: Decision = "deny"
        outside_repo: Decision = "deny"

    class AgentsSpec(Strict):
        names: list[str] = Field(default_factory=lambda: list(DEFAULT_AGENT_NAMES))

        _listify = field_validator("names", mode="before")(_as_list)

        @field_validator("names")
        @classmethod
        def _non_empty(cls, values: list[str]) -> list[str]:
            for v in values:
                if not v.strip():
                    raise ValueError("names must not be empty")
            return values

    class PolicySpec(Strict):
        version: Literal[1] = 1
        default: Decision = "ask"
        ask: AskSpec = Field(default_factory=AskSpec)
        writes: WritesSpec = Field(default_factory=WritesSpec)
        agents: AgentsSpec = Field(default_factory=AgentsSpec)
        # None: the file has no [[rule]] at all, and the built-in rules apply
        rules: list[RuleSpec] | None = Field(default=None, alias="rule")

    return PolicySpec


# -- the compiled policy -----------------------------------------------------------


def glob_match(text: str, pattern: str) -> bool:
    """``fnmatch.fnmatchcase(text, pattern)``, without compiling a regular expression for a
    pattern whose only wildcard is a trailing ``*`` or that has none (nearly every pattern of
    a policy): the hook decides once per process, and compiling costs more than matching."""
    stem = pattern.rstrip("*")
    if "*" in stem or "?" in stem or "[" in stem:
        return fnmatch.fnmatchcase(text, pattern)
    return text.startswith(stem) if len(stem) < len(pattern) else text == pattern


@record(frozen=True)
class Verdict:
    """What the policy says about one call."""

    decision: str  # allow | deny | ask | prompt
    reason: str
    rule: int | None = None  # 1-based number of the deciding rule, None for the default
    line: int | None = None  # its line in the policy file


@record(frozen=True)
class Rule:
    number: int
    line: int | None
    tools: tuple[str, ...]
    globs: tuple[str, ...]
    regexes: tuple[re.Pattern[str], ...]
    paths: tuple[str, ...]
    decision: str
    reason: str | None
    builtin: bool = False

    def matches(self, tool: str, command: str | None, path: str | None) -> bool:
        if not any(glob_match(tool, t) for t in self.tools):
            return False
        if self.globs or self.regexes:
            if command is None:
                return False
            if not (any(glob_match(command, g) for g in self.globs)
                    or any(r.search(command) for r in self.regexes)):
                return False
        if self.paths:
            if path is None:
                return False
            from core.scope import match_one

            if not any(match_one(path, g) for g in self.paths):
                return False
        return True

    def where(self) -> str:
        if self.builtin:
            return f"built-in rule {self.number}"
        return f"rule {self.number}" + (f" (line {self.line})" if self.line else "")

    def conditions(self) -> tuple:
        return (self.tools, self.globs, tuple(r.pattern for r in self.regexes), self.paths)


class Policy:
    """A validated policy, ready to decide calls. Build with :func:`load_policy`.

    ``data`` is the validated file in its normal form (``PolicySpec.model_dump()``),
    with ``rules`` filled in from the built-in policy when the file has no
    ``[[rule]]`` (``data["builtin_rules"]`` then says so).
    """

    def __init__(self, data: dict[str, Any], *, source: str, rule_lines: dict[int, int] | None = None,
                 exists: bool = True) -> None:
        self.data = data
        self.source = source
        self.exists = exists
        self.builtin_rules = bool(data.get("builtin_rules"))
        self.rule_lines = dict(rule_lines or {})
        self.rules: list[Rule] = [
            Rule(
                number=i + 1,
                line=self.rule_lines.get(i),
                tools=tuple(r["tool"]),
                globs=tuple(r["command"]),
                regexes=tuple(re.compile(x) for x in r["command_regex"]),
                paths=tuple(r["paths"]),
                decision=r["decision"],
                reason=r["reason"],
                builtin=self.builtin_rules,
            )
            for i, r in enumerate(data["rules"])
        ]

    @property
    def default(self) -> str:
        return self.data["default"]

    @property
    def ask_timeout(self) -> float:
        return float(self.data["ask"]["timeout"])

    @property
    def ask_on_timeout(self) -> str:
        """As written: ``deny`` or ``ask``."""
        return self.data["ask"]["on_timeout"]

    @property
    def on_timeout(self) -> str:
        """``deny`` or ``prompt`` (hand the call to Claude Code's own prompt)."""
        return "deny" if self.ask_on_timeout == "deny" else "prompt"

    @property
    def without_lease(self) -> str:
        return self.data["writes"]["without_lease"]

    @property
    def outside_repo(self) -> str:
        return self.data["writes"]["outside_repo"]

    @property
    def agent_names(self) -> tuple[str, ...]:
        agents = self.data.get("agents") or {}
        return tuple(agents.get("names", DEFAULT_AGENT_NAMES))

    def is_agent(self, actor: str) -> bool:
        """True when ``actor`` is an agent's name by the policy's ``[agents] names`` globs."""
        return any(glob_match(actor, g) for g in self.agent_names)

    def hook_timeout(self) -> int:
        """The timeout to give the hook entry in Claude Code's settings: above our own deadline.

        ``tower hook install`` also passes it to the hook as ``--deadline``, so
        the hook stops waiting 30 s before Claude Code would kill it even if
        this ask timeout is raised later (``tower hook check`` then warns).
        """
        return max(CLAUDE_HOOK_TIMEOUT, int(self.ask_timeout) + 60)

    def dropped_deny_rules(self) -> list[Rule]:
        """The built-in deny rules this policy's own rules leave out (for `tower hook check`)."""
        if self.builtin_rules:
            return []
        ours = {r.conditions() for r in self.rules if r.decision == "deny"}
        return [r for r in default_policy().rules if r.decision == "deny" and r.conditions() not in ours]

    def decide(self, tool: str, *, command: str | None = None, path: str | None = None,
               cwd: str | None = None) -> Verdict:
        """The verdict for a call of ``tool`` (with its Bash ``command`` / repo-relative ``path``).

        ``cwd``: where a Bash command runs, to see what its globs match now.
        """
        if command is None:
            return self._first(tool, None, path)
        if len(command) > MAX_COMMAND_LENGTH:
            return Verdict("deny", f"Tower: the command is {len(command):,} characters long; Tower checks"
                                   f" commands of up to {MAX_COMMAND_LENGTH:,}: split it, or write long"
                                   " content with the Write tool")
        from core.shell import analyse

        whole = _squeeze(command)
        seen = analyse(command, cwd)
        verdict: Verdict | None = None
        several = len(seen.allow) > 1
        for text in seen.allow or [whole]:
            verdict = _stricter(verdict, self._first(tool, text, path, part_of=several or text != whole))
        # the other views only ever make the answer stricter, and only through a rule
        for text in dict.fromkeys([whole, *seen.deny]):
            other = self._first(tool, text, path, part_of=text != whole)
            if other.rule is not None and other.decision != "allow":
                verdict = _stricter(verdict, other)
        if seen.guard is not None:
            verdict = _stricter(verdict, Verdict("deny", f"Tower (built in, whatever the policy says):"
                                                         f" {seen.guard}"))
        assert verdict is not None
        if verdict.decision == "allow" and seen.risky:
            fallback = self.default if self.default != "allow" else "ask"
            allowed = f"{self._rule(verdict).where()} allows it, but " if verdict.rule else ""
            return Verdict(
                fallback,
                f"Tower policy: {allowed}the command has {seen.risky}, which no rule allows on its own: {fallback}",
                verdict.rule,
                verdict.line,
            )
        return verdict

    def _rule(self, verdict: Verdict) -> Rule:
        return self.rules[(verdict.rule or 1) - 1]

    def _first(self, tool: str, command: str | None, path: str | None, *, part_of: bool = False) -> Verdict:
        for rule in self.rules:
            if rule.matches(tool, command, path):
                text = f"Tower policy {rule.where()}: {rule.decision}"
                if part_of:
                    text += f" for `{_short(command or '')}`"
                if rule.reason:
                    text += f": {rule.reason}"
                return Verdict(rule.decision, text, rule.number, rule.line)
        if command is not None:
            what = f"{tool} `{_short(command)}`"
        else:
            what = f"{tool} {path}" if path else tool
        return Verdict(self.default, f"Tower policy default: {self.default} (no rule matches {what})")


def _stricter(current: Verdict | None, other: Verdict) -> Verdict:
    if current is None or STRICTNESS[other.decision] > STRICTNESS[current.decision]:
        return other
    return current


def _short(text: str) -> str:
    return ellipsize(text, 80)


def _squeeze(command: str) -> str:
    return " ".join(command.replace("\\\n", " ").split())


def split_command(command: str) -> tuple[list[str], str | None]:
    """The simple commands of a shell command as written (whitespace collapsed), and the first
    construct that makes it risky (see ``core/shell.py``), or None."""
    from core.shell import split_simple

    return split_simple(command)


# -- loading -----------------------------------------------------------------------

# read only when a policy text is validated, not on the hook's path: compiled then
_ARRAY_HEADER = r"^\s*\[\[\s*([^\[\]]+?)\s*\]\]\s*(#.*)?$"
_TABLE_HEADER = r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$"
_KEY = r"""^\s*([A-Za-z0-9_-]+|"[^"]*"|'[^']*')\s*="""


def _key_lines(text: str) -> dict[tuple[Any, ...], int]:
    """Where each table and key of a TOML text starts: ``("rule", 2, "decision") -> 31``.

    tomllib keeps no positions, so this reads the lines again, roughly but
    enough to point a person at the right line of an invalid value.
    """
    lines: dict[tuple[Any, ...], int] = {}
    counts: dict[str, int] = {}
    current: tuple[Any, ...] = ()
    in_string: str | None = None
    array_header, table_header, key = re.compile(_ARRAY_HEADER), re.compile(_TABLE_HEADER), re.compile(_KEY)
    for number, line in enumerate(text.splitlines(), 1):
        if in_string:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        match = array_header.match(line)
        if match:
            name = match.group(1).strip().strip("\"'")
            index = counts.get(name, 0)
            counts[name] = index + 1
            current = (name, index)
            lines.setdefault(current, number)
            continue
        match = table_header.match(line)
        if match:
            current = tuple(part.strip().strip("\"'") for part in match.group(1).split("."))
            lines.setdefault(current, number)
            continue
        match = key.match(line)
        if match:
            lines.setdefault(current + (match.group(1).strip("\"'"),), number)
            rest = line[match.end() :]
            for q in ('"""', "'''"):
                if rest.count(q) % 2 == 1:
                    in_string = q
    return lines


def _locate(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_policy(text: str, source: str = POLICY_NAME, *, exists: bool = True) -> Policy:
    """Validate a policy text (with pydantic); raise :class:`PolicyError` naming the first bad line."""
    import tomllib

    from pydantic import ValidationError

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        end = re.search(r"\(at end of document\)", message)
        if match:
            line = int(match.group(1))
            what, where = message[: match.start()].strip(), f"line {line}, column {match.group(2)}"
        elif end:  # e.g. an array or string never closed: the file ran out at its last line
            line = _last_line(text)
            what = message[: end.start()].strip() + " (the file ends inside a value: a bracket or quote left open?)"
            where = f"line {line} (end of file)"
        else:
            line, what, where = None, message, "(line unknown)"
        raise PolicyError(f"policy {source} {where}: invalid TOML: {what}", path=source, line=line) from None
    lines = _key_lines(text)
    try:
        spec = schema().model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        line = _locate(lines, loc)
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}" if loc else "unknown key"
            loc = loc[:-1]
        elif err["type"] == "missing":
            msg = f"{loc[-1]!r} is required"
            loc = loc[:-1]
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] != "value_error" and "input" in err:
                got = repr(err["input"])
                msg += f" (got {got if len(got) <= 60 else got[:59] + '…'})"
        at = f"line {line}" if line else "(line unknown)"
        field = _dotted(loc)
        raise PolicyError(
            f"policy {source} {at}: {field + ': ' if field else ''}{msg}", path=source, line=line
        ) from None
    rule_lines = {key[1]: n for key, n in lines.items() if len(key) == 2 and key[0] == "rule"}
    data = spec.model_dump()
    if data["rules"] is None:
        # no [[rule]] at all: a file that only tunes the timeout keeps the built-in rules
        # (an explicit `rule = []` means no rules, and `tower hook check` warns about it)
        builtin = default_policy()
        data["rules"] = builtin.data["rules"]
        data["builtin_rules"] = True
        rule_lines = dict(builtin.rule_lines)
    return Policy(data, source=source, rule_lines=rule_lines, exists=exists)


def _last_line(text: str) -> int:
    """The number of the last line that has something on it (1 for an empty text)."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return max(len(lines), 1)


def _digest(text: str) -> str:
    try:
        from _blake2 import blake2b  # what hashlib.blake2b is, without hashlib's OpenSSL import
    except ImportError:  # pragma: no cover - other Pythons
        from hashlib import blake2b
    return blake2b(f"{_CACHE_FORMAT}\0{text}".encode(), digest_size=20).hexdigest()


def _cached(cache: Path, digest: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(cache.read_text(encoding="utf-8"))
        if entry.get("digest") == digest and entry.get("format") == _CACHE_FORMAT:
            return entry
    except (OSError, ValueError, AttributeError):
        pass
    return None


def _remember(cache: Path, digest: str, policy: Policy) -> None:
    """Best effort: a store directory we cannot write to only costs the next call a validation."""
    if not cache.parent.is_dir():
        return
    entry = {"format": _CACHE_FORMAT, "digest": digest, "data": policy.data,
             "rule_lines": {str(k): v for k, v in policy.rule_lines.items()}}
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(entry), encoding="utf-8")
        os.replace(tmp, cache)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass


def load_policy(path: Path | str, *, cache: bool = True) -> Policy:
    """The policy in ``path``; the built-in default when the file does not exist.

    Raises :class:`PolicyError` (exit 2) for a file that exists but is unreadable
    or invalid. A text validated before is not validated again: its normal form
    is read back from ``.policy.cache.json`` beside it (keyed by a digest of the
    text, so any edit is validated afresh).
    """
    path = Path(path)
    exists = True
    try:
        text = path.read_text(encoding="utf-8")
        source = str(path)
    except FileNotFoundError:
        text, exists, source = DEFAULT_POLICY, False, f"{path} (missing: built-in default)"
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"policy {path} is unreadable: {exc}", path=str(path)) from None
    if not cache:
        return parse_policy(text, source, exists=exists)
    cache_path = path.with_name(CACHE_NAME)
    digest = _digest(text)
    entry = _cached(cache_path, digest)
    if entry is not None:
        lines = {int(k): v for k, v in entry["rule_lines"].items()}
        return Policy(entry["data"], source=source, rule_lines=lines, exists=exists)
    policy = parse_policy(text, source, exists=exists)
    _remember(cache_path, digest, policy)
    return policy


@functools.cache
def default_policy() -> Policy:
    return parse_policy(DEFAULT_POLICY, "(built-in default)", exists=False)


def write_default_policy(store_dir: Path) -> Path:
    """Create ``store_dir/policy.toml`` with the commented defaults unless it exists.

    Idempotent and never overwrites: the file appears whole or not at all
    (written aside, then hard-linked into place, which fails if another process
    or a person got there first).
    """
    store_dir = Path(store_dir)
    target = store_dir / POLICY_NAME
    if target.exists():
        return target
    store_dir.mkdir(parents=True, exist_ok=True)
    tmp = store_dir / f".{POLICY_NAME}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(DEFAULT_POLICY)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            pass
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    return target


DEFAULT_POLICY = r"""# Tower policy for the Claude Code hook (`tower hook claude-code`).
#
# The hook reads this file on every tool call an agent makes. Edit it freely:
# a mistake is reported with its line number (`tower hook check` tests it), and
# while the file is invalid the hook denies every call, saying why.
# Full reference: docs/approvals.md.
#
# Decisions:
#   "allow"   run the call, no prompt
#   "deny"    refuse it; the reason is shown to the agent
#   "ask"     file a Tower approval and wait until a person decides it in the
#             control room (or with `tower approval approve A1` / `reject`)
#   "prompt"  hand the call to Claude Code's own permission prompt
#
# [[rule]] tables are tried top to bottom; the first whose conditions all match
# decides. Conditions (each optional; a string or a list of strings):
#   tool           glob on the tool name: "Bash", "Read", "mcp__*" (default "*")
#   command        shell-style glob on a Bash command: "*" matches anything,
#                  spaces and slashes included, and the glob must match the
#                  whole of one simple command (see below)
#   command_regex  Python regular expression, searched anywhere in the command
#                  or one of its simple commands
#   paths          path glob, as in task scopes ("*.md", "src/**", ".env"), on
#                  the repo-relative file_path / notebook_path / path of a call
#   reason         text shown with the decision
#
# A Bash command is judged on what the shell would run. It is split at ; && ||
# | & and newlines into simple commands, and each is matched with its quotes
# removed ('git' "status" is git status). Every one must be allowed for the
# command to be allowed, and the strictest answer wins (deny > ask > prompt >
# allow), so "ls && rm -rf ~" is not allowed by an "ls *" rule. Rules are also
# matched against what a command runs underneath (without env/command/sudo/
# nohup/timeout…, with /bin/rm read as rm, the commands inside $(...) and
# `sh -c '...'`, and the files its globs match now): those can only make the
# answer stricter. A command with $VARIABLES, $(...), backticks, an output
# redirection to a file, brace expansion, a here-document, a subshell or a
# shell keyword (if, for, while…) is never allowed by a rule alone: it gets
# the default instead ("ask" if the default is "allow"). Commands longer than
# 64 KiB are denied.
#
# Whatever this file says, an agent never runs Tower's person-only verbs:
# `tower approval approve|reject`, `tower conflict ack`, `tower watch
# --rebaseline` and `tower hook install|uninstall` are denied (the rule below
# says so too). A file with no [[rule]] at all keeps the built-in rules; a
# file with rules replaces them (`tower hook check` warns about built-in deny
# rules it leaves out).
#
# Write, Edit, MultiEdit and NotebookEdit also claim the file for the session's
# lease: a file claimed by another worktree is denied whatever the rules say.
version = 1

# The decision for a call no rule matches.
default = "ask"

[ask]
# Seconds the hook waits for a person's decision. Claude Code lets a call
# through when a hook outlives its own timeout (600 s unless the hook entry
# says otherwise; `tower hook install` writes this value + 60 s, at least
# 600 s, and tells the hook), so the hook never waits past that timeout less
# 30 s: after raising this, run `tower hook install claude-code` again
# (`tower hook check` warns when it is needed).
timeout = 540
# When nobody decided in time: "deny", or "ask" to hand the call to Claude
# Code's own permission prompt. The approval is marked expired either way.
on_timeout = "deny"

[writes]
# A file write in a worktree where this session holds no active lease:
# "deny" (the agent is told to run `tower task claim` first), "ask", "prompt"
# or "allow" (written without a claim).
without_lease = "deny"
# A file outside the repository, or inside .git.
outside_repo = "deny"

[agents]
# Names (globs) that belong to agents. Deciding an approval, acknowledging a
# conflict and rebaselining the watcher are a person's acts: refused when the
# actor (--agent / TOWER_AGENT) matches one of these, holds a lease, or is the
# request's own requester. Add the names your agents run under.
names = ["agent@*", "claude-code", "claude-code:*"]

# -- never --------------------------------------------------------------------

[[rule]]
tool = "Bash"
command_regex = '(^|[\s;&|(])(sudo\s+)?rm\s+([^\s;&|]+\s+)*(/|/\*|~|~/|~/\*|"?\$HOME"?/?\*?|\.|\./|\.\.|\.\./|\*)(?=$|[\s;&|)])'
decision = "deny"
reason = "rm of the filesystem root, the home directory or the whole working directory"

[[rule]]
tool = "Bash"
command_regex = '\bgit\s+([^;&|]*\s)?push\b[^;&|]*(\s--force(?=$|[\s;&|])|\s-[a-zA-Z]*f[a-zA-Z]*(?=$|[\s;&|])|\s\+\S)'
decision = "deny"
reason = "force-pushing rewrites shared history; push without --force, or ask a person to do it"

[[rule]]
tool = "Bash"
command_regex = [
  '\bmkfs(\.\w+)?\b',
  '\bdd\b[^;&|]*\bof=/dev/',
  '>\s*/dev/(sd|hd|nvme|disk|mmcblk)',
  ':\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}',
  '\bch(mod|own)\s+(\S+\s+)*(-R|--recursive)\s+(\S+\s+)*/(?=$|\s)',
]
decision = "deny"
reason = "destroys disks, devices or the system"

[[rule]]
tool = "Bash"
command_regex = '\b(curl|wget)\b[^;&]*\|\s*(sudo\s+)?(ba|z|da|k)?sh\b'
decision = "deny"
reason = "piping a download into a shell runs unreviewed code"

[[rule]]
tool = "Bash"
command_regex = [
  '\btower\b[^;&|]*\bapproval\s+(approve|reject)\b',
  '\btower\b[^;&|]*\bconflict\s+ack\b',
  '\btower\b[^;&|]*\bwatch\b[^;&|]*\s--rebaseline\b',
  '\btower\b[^;&|]*\bhook\s+(un)?install\b',
  '\btower(\s+--?\w[\w-]*(=\S+|\s+[^-\s]\S*)?)*\s+serve\b',
]
decision = "deny"
reason = "only a person decides Tower approvals, acknowledges conflicts, rebaselines the watcher, serves the control room or changes Tower's hook"

# -- ask a person ---------------------------------------------------------------

[[rule]]
paths = [".env", ".env.local", ".env.*.local", "*.pem", "*.key", "id_rsa*", "id_ed25519*"]
decision = "ask"
reason = "the file may hold secrets"

[[rule]]
tool = "Bash"
command = ["find *-exec*", "find *-ok*", "find *-delete*", "find *-fprint*", "find *-fls*",
           "rg *--pre*", "git *--output*"]
decision = "ask"
reason = "this form of the command can write or run other programs"

# -- allow ----------------------------------------------------------------------

[[rule]]
tool = "Bash"
command = [
  "ls", "ls *", "pwd", "cat *", "head *", "tail *", "wc *", "cut *",
  "echo", "echo *", "printf *", "which *", "type *", "file *", "stat *",
  "du *", "df", "df *", "tree", "tree *", "basename *", "dirname *", "realpath *",
  "grep *", "egrep *", "fgrep *", "rg *", "find *", "diff *", "cmp *",
  "git status", "git status *", "git diff", "git diff *", "git log", "git log *",
  "git show", "git show *", "git blame *", "git ls-files", "git ls-files *",
  "git rev-parse *", "git branch", "git branch --show-current", "git remote -v",
  "pytest", "pytest *", "python -m pytest", "python -m pytest *",
  "python3 -m pytest", "python3 -m pytest *",
]
decision = "allow"
reason = "read-only command"

# Agents coordinate through Tower's command line (its person-only verbs are denied above).
[[rule]]
tool = "Bash"
command = ["tower", "tower *"]
decision = "allow"

[[rule]]
tool = ["Read", "Glob", "Grep", "LS", "NotebookRead", "WebSearch", "TodoWrite",
        "Task", "Agent", "BashOutput", "KillShell", "KillBash", "AskUserQuestion"]
decision = "allow"

# Writes are allowed once the file is claimed for the session's lease.
[[rule]]
tool = ["Write", "Edit", "MultiEdit", "NotebookEdit"]
decision = "allow"

# Leaving plan mode is the person's call, in Claude Code's own prompt.
[[rule]]
tool = "ExitPlanMode"
decision = "prompt"
"""
