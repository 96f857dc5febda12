"""What a shell would run: a conservative reading of a Bash command for the policy.

The policy must judge what the shell will execute, not the text an agent
typed: ``tower approval "approve" A1``, ``appro\\ve`` and ``/x/bin/tower
approval approve`` all run Tower's approve verb. :func:`parse` reads a command
the way Bash does for the parts that matter here (blanks, quotes, backslashes,
line continuations, comments, operators, redirections, here-documents, ``$…``
and backtick substitutions) in one linear pass, and says what it did not
understand: anything that makes the words depend on run-time state
(parameter expansion, command substitution, ANSI-C quoting, brace expansion,
subshells, shell keywords…) makes the command *risky*, and a risky command is
never allowed by a rule alone. :func:`analyse` then derives the texts the
policy matches:

- ``allow``: one text per simple command, its words as the shell passes them
  (quotes removed, re-quoted only where a word needs it). A compound command
  is allowed only when every one of these is.
- ``deny``: more views that only ever make the answer stricter: the same
  command without its environment assignments and wrappers (``command``,
  ``env``, ``sudo``, ``nohup``, ``timeout`` …), with the program's directory
  dropped (``/bin/rm`` is ``rm``), ``python -m tui.cli`` read as ``tower``,
  the commands inside ``$(…)``, backticks, ``<(…)``, and the strings given to
  ``sh -c``/``bash -c``/``eval``, and, when the working directory is known,
  each unquoted glob replaced by the files it matches now.
- ``guard``: why the command runs one of Tower's person-only verbs (deciding
  an approval, acknowledging a conflict, rebaselining the watcher, changing
  Tower's hook), whatever the policy file says.

Python's ``shlex`` is not used for the words: it ends a word at ``#``
(``a#b`` is one word to Bash), turns backslash-newline into a newline instead
of nothing, does not know ``$'…'``, ``$(…)`` or here-documents, and cannot say
where it was unsure. Its ``quote`` renders the words back.
"""

from __future__ import annotations

import os
import re
import shlex

from core.records import field, record

MAX_DEPTH = 8  # nested substitutions and `sh -c` strings followed; deeper is risky
_GLOB_DIRS = 64  # directories listed to expand the globs of one command
_GLOB_MATCHES = 500  # file names a command's globs may expand to

_PLAIN = re.compile(r"[^ \t\n\\'\"$`;&|<>()]+")
_DQ_PLAIN = re.compile(r'[^"\\$`]+')
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")
_BRACES = re.compile(r"\{[^{}]*(?:,|\.\.)[^{}]*\}")
_SAFE = re.compile(r"[\w@%+=:,./-]+", re.ASCII)
_UNSAFE_IN_EXPANSION = re.compile(r"[\s;&|<>]")
_SAFE_TARGETS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr"})

# words that start a compound command or change how the rest is read
_KEYWORDS = frozenset({"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case",
                       "esac", "select", "function", "coproc", "[[", "]]", "in"})
_HARMLESS_PREFIXES = frozenset({"!", "{", "}", "time"})


@record(frozen=True)
class Word:
    """One shell word: its value after quote removal (expansions kept as written)."""

    text: str
    quoted: bool = False  # some of it was quoted or escaped
    expansion: bool = False  # holds $…, `…` or <(…): its value is only known at run time
    unquoted: str = ""  # the characters that were not quoted ("\0" for each quoted stretch)
    pattern: str = ""  # as a glob pattern: the quoted characters escaped

    @property
    def glob(self) -> bool:
        u = self.unquoted
        if "*" in u or "?" in u:
            return True
        at = u.find("[")
        return at >= 0 and "]" in u[at + 1:]

    def render(self) -> str:
        if not self.quoted and not self.expansion and self.text:
            return self.text  # as written: globs and ~ stay visible to the rules
        if self.text and _SAFE.fullmatch(self.text):
            return self.text
        if self.expansion and not _UNSAFE_IN_EXPANSION.search(self.text):
            return self.text  # $HOME, ${X:-y}, $'…' as written: what the rules were written against
        return shlex.quote(self.text)


def plain(text: str) -> Word:
    """A word whose value is ``text`` (for names Tower derives, like a program's base name)."""
    return Word(text, quoted=not bool(_SAFE.fullmatch(text)), unquoted=text, pattern=text)


@record
class Command:
    """A simple command: its words (assignments first, as written) and its source text."""

    words: list[Word]
    source: str
    nested: bool  # inside $(…), `…`, <(…), a here-document or a `sh -c` string


@record
class Parsed:
    commands: list[Command] = field(default_factory=list)
    risky: str | None = None  # the first thing that was not understood

    def note(self, what: str) -> None:
        if self.risky is None:
            self.risky = what


class _WordBuilder:
    __slots__ = ("text", "unq", "pat", "quoted", "expansion", "started")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.unq: list[str] = []
        self.pat: list[str] = []
        self.quoted = False
        self.expansion = False
        self.started = False

    def plain(self, t: str) -> None:
        self.text.append(t)
        self.unq.append(t)
        self.pat.append(t)
        self.started = True

    def literal(self, t: str) -> None:
        self.text.append(t)
        self.unq.append("\0")
        self.pat.append(_glob_escape(t))
        self.quoted = self.started = True

    def expand(self, t: str) -> None:
        self.text.append(t)
        self.unq.append("\0")
        self.pat.append(_glob_escape(t))
        self.expansion = self.started = True

    def build(self) -> Word:
        return Word("".join(self.text), self.quoted, self.expansion, "".join(self.unq), "".join(self.pat))


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def parse(command: str) -> Parsed:
    """Read ``command`` as Bash would split it into simple commands (see the module doc)."""
    out = Parsed()
    _Lexer(out).run(command, 0, None, 0, False)
    return out


class _Lexer:
    def __init__(self, out: Parsed) -> None:
        self.out = out

    def note(self, what: str) -> None:
        self.out.note(what)

    def run(self, s: str, i: int, stop: str | None, depth: int, nested: bool) -> int:
        """Lex ``s`` from ``i`` until ``stop`` (``)``) or the end; returns the index after it."""
        n = len(s)
        words: list[Word] = []
        w = _WordBuilder()
        start = i
        paren = 0
        redirect: str | None = None
        heredocs: list[tuple[str, bool, bool]] = []

        def end_word() -> None:
            nonlocal w, redirect
            if not w.started:
                return
            word = w.build()
            w = _WordBuilder()
            if redirect is None:
                words.append(word)
                return
            op, redirect = redirect, None
            self._target(op, word, heredocs)

        def end_command(at: int) -> None:
            nonlocal words, start, redirect
            end_word()
            if redirect is not None:
                self.note("an incomplete redirection")
                redirect = None
            if words:
                self.out.commands.append(Command(words, s[start:at], nested))
            words = []
            start = at

        while i < n:
            c = s[i]
            if c == " " or c == "\t":
                end_word()
                i += 1
            elif c == "\n":
                end_command(i)
                i += 1
                if heredocs:
                    i = self._bodies(s, i, heredocs, depth)
                    heredocs = []
                start = i
            elif c == "#" and not w.started:
                j = s.find("\n", i)
                i = n if j < 0 else j
            elif c == ")" and stop == ")" and paren == 0:
                end_command(i)
                return i + 1
            elif c == "(" or c == ")":
                end_command(i)
                self.note("a subshell or function definition")
                paren += 1 if c == "(" else -1
                i += 1
                start = i
            elif c == "&" and s.startswith("&>", i):
                end_word()
                op = "&>>" if s.startswith("&>>", i) else "&>"
                redirect = op
                i += len(op)
            elif c in ";&|":
                end_command(i)
                for op in (";;&", "&&", "||", "|&", ";;", ";&"):
                    if s.startswith(op, i):
                        i += len(op)
                        break
                else:
                    i += 1
                start = i
            elif c == "<" or c == ">":
                if s.startswith("(", i + 1):  # process substitution
                    self.note("process substitution")
                    i = self._nested(s, i + 2, depth)
                    w.expand(f"{c}(…)")
                    continue
                if w.started and not w.quoted and not w.expansion and "".join(w.text).isdigit():
                    w = _WordBuilder()  # the descriptor a redirection applies to (2>)
                elif w.started and re.fullmatch(r"\{[A-Za-z_]\w*\}", "".join(w.unq)):
                    w = _WordBuilder()
                    self.note("a redirection to a named file descriptor")
                else:
                    end_word()
                for op in ("<<<", "<<-", "<<", "<>", "<&", ">>", ">|", ">&", "<", ">"):
                    if s.startswith(op, i):
                        break
                if redirect is not None:
                    self.note("an incomplete redirection")
                redirect = op
                i += len(op)
            elif c == "\\":
                if i + 1 >= n:
                    w.plain("\\")
                    i += 1
                elif s[i + 1] == "\n":
                    i += 2  # a line continuation: removed, the word goes on
                else:
                    w.literal(s[i + 1])
                    i += 2
            elif c == "'":
                j = s.find("'", i + 1)
                if j < 0:
                    self.note("an unterminated quote")
                    j = n
                w.literal(s[i + 1 : j])
                i = j + 1
            elif c == '"':
                i = self._double(s, i + 1, w, depth)
            elif c == "$":
                i = self._dollar(s, i, w, depth, in_double=False)
            elif c == "`":
                i = self._backtick(s, i, w, depth)
            else:
                m = _PLAIN.match(s, i)
                if m is None:  # the branches above take every character _PLAIN refuses
                    raise AssertionError(f"unparsed character {c!r}")
                w.plain(m.group())
                i = m.end()
        end_command(n)
        if heredocs:
            self.note("a here-document without its end")
        if stop is not None:
            self.note("an unterminated substitution")
        return n

    # -- pieces of a word ------------------------------------------------------------

    def _double(self, s: str, i: int, w: _WordBuilder, depth: int) -> int:
        """A double-quoted string from ``i`` (after the quote); returns the index after its end."""
        n = len(s)
        buf: list[str] = []
        w.literal("")
        while i < n:
            c = s[i]
            if c == '"':
                w.literal("".join(buf))
                return i + 1
            if c == "\\" and i + 1 < n:
                nxt = s[i + 1]
                if nxt == "\n":
                    i += 2
                elif nxt in '$`"\\':
                    buf.append(nxt)
                    i += 2
                else:
                    buf.append("\\")
                    i += 1
            elif c == "$" or c == "`":
                w.literal("".join(buf))
                buf = []
                i = self._dollar(s, i, w, depth, in_double=True) if c == "$" else self._backtick(s, i, w, depth)
            else:
                m = _DQ_PLAIN.match(s, i)
                if m is None:  # a lone backslash at the very end
                    buf.append(c)
                    i += 1
                else:
                    buf.append(m.group())
                    i = m.end()
        w.literal("".join(buf))
        self.note("an unterminated quote")
        return n

    def _dollar(self, s: str, i: int, w: _WordBuilder, depth: int, *, in_double: bool) -> int:
        n = len(s)
        nxt = s[i + 1] if i + 1 < n else ""
        if nxt == "(":
            self.note("command substitution")
            end = self._nested(s, i + 2, depth)
            w.expand("$(…)")
            return end
        if nxt == "{":
            self.note("a parameter expansion (${…})")
            end = self._braced(s, i + 2, depth)
            w.expand(s[i:end])
            return end
        if nxt == "'" and not in_double:
            self.note("ANSI-C quoting ($'…')")
            j = i + 2
            while j < n and s[j] != "'":
                j += 2 if s[j] == "\\" else 1
            if j >= n:
                self.note("an unterminated quote")
            w.expand(s[i : j + 1])
            return min(j + 1, n)
        if nxt == '"' and not in_double:
            self.note('a locale-translated string ($"…")')
            return self._double(s, i + 2, w, depth)
        m = _NAME.match(s, i + 1)
        if m is not None:
            self.note("a parameter expansion ($…)")
            w.expand(s[i : m.end()])
            return m.end()
        if nxt and nxt in "@*#?$!-0123456789":
            self.note("a parameter expansion ($…)")
            w.expand(s[i : i + 2])
            return i + 2
        if in_double:
            w.literal("$")
        else:
            w.plain("$")
        return i + 1

    def _nested(self, s: str, i: int, depth: int) -> int:
        """The commands of ``$(…)`` or ``<(…)`` from ``i``; returns the index after the ``)``."""
        if depth + 1 > MAX_DEPTH:
            self.note("substitutions nested too deeply")
            return len(s)
        return self.run(s, i, ")", depth + 1, True)

    def _braced(self, s: str, i: int, depth: int) -> int:
        """Skip a ``${…}`` body from ``i``, reading the substitutions inside it; index after ``}``."""
        n = len(s)
        level = 1
        while i < n:
            c = s[i]
            if c == "\\":
                i += 2
            elif c == "'":
                j = s.find("'", i + 1)
                i = n if j < 0 else j + 1
            elif c == '"':
                i = self._double(s, i + 1, _WordBuilder(), depth)
            elif c == "$" and s.startswith("$(", i):
                i = self._nested(s, i + 2, depth)
            elif c == "`":
                i = self._backtick(s, i, _WordBuilder(), depth)
            elif c == "{":
                level += 1
                i += 1
            elif c == "}":
                level -= 1
                i += 1
                if level == 0:
                    return i
            else:
                i += 1
        self.note("an unterminated ${…}")
        return n

    def _backtick(self, s: str, i: int, w: _WordBuilder, depth: int) -> int:
        n = len(s)
        self.note("command substitution")
        j = i + 1
        buf: list[str] = []
        while j < n and s[j] != "`":
            if s[j] == "\\" and j + 1 < n and s[j + 1] in "`$\\":
                buf.append(s[j + 1])
                j += 2
            else:
                buf.append(s[j])
                j += 1
        if j >= n:
            self.note("an unterminated quote")
        if depth + 1 > MAX_DEPTH:
            self.note("substitutions nested too deeply")
        else:
            self.run("".join(buf), 0, None, depth + 1, True)
        w.expand("`…`")
        return min(j + 1, n)

    # -- redirections --------------------------------------------------------------------

    def _target(self, op: str, word: Word, heredocs: list[tuple[str, bool, bool]]) -> None:
        if op in ("<<", "<<-"):
            self.note("a here-document")
            heredocs.append((word.text, op == "<<-", word.quoted))
            return
        if op in ("<", "<<<"):
            return
        if op in (">&", "<&"):
            if re.fullmatch(r"\d*-?", word.text) and not word.expansion:
                return  # >&2, 2>&1, >&- : duplicating or closing a descriptor writes no file
            if op == "<&":
                return
        if word.expansion or word.text not in _SAFE_TARGETS:
            self.note("an output redirection to a file")

    def _bodies(self, s: str, i: int, heredocs: list[tuple[str, bool, bool]], depth: int) -> int:
        """Skip the bodies of the here-documents begun on the line that just ended."""
        n = len(s)
        for delimiter, strip_tabs, quoted in heredocs:
            body_start = i
            while i < n:
                j = s.find("\n", i)
                end = n if j < 0 else j
                line = s[i:end]
                i = end + 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    body = s[body_start : end - len(line)]
                    break
            else:
                body = s[body_start:]
                self.note("a here-document without its end")
            # an unquoted delimiter: $(…) and `…` in the body run
            if not quoted and ("$(" in body or "`" in body) and depth + 1 <= MAX_DEPTH:
                self.run(body, 0, None, depth + 1, True)
        return min(i, n)


def split_simple(command: str) -> tuple[list[str], str | None]:
    """The simple commands of ``command`` as written (whitespace collapsed), and what is risky in it."""
    parsed = parse(command)
    parts = [" ".join(c.source.replace("\\\n", " ").split()) for c in parsed.commands if not c.nested]
    return [p for p in parts if p], parsed.risky


# -- what runs ------------------------------------------------------------------------

_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "busybox", "fish", "rbash"})
_PYTHON = re.compile(r"python(\d+(\.\d+)?)?")
# wrapper -> its options that take a value (the wrapped command follows the options)
_WRAPPERS: dict[str, frozenset[str]] = {
    "command": frozenset(), "builtin": frozenset(), "exec": frozenset({"-a"}), "nohup": frozenset(),
    "setsid": frozenset(), "time": frozenset({"-f", "-o", "--format", "--output"}), "noglob": frozenset(),
    "nice": frozenset({"-n", "--adjustment"}), "ionice": frozenset({"-c", "-n", "-p", "-t"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}), "unbuffer": frozenset(), "caffeinate": frozenset(),
    "sudo": frozenset({"-u", "-g", "-h", "-p", "-r", "-t", "-U", "-C", "-D", "-T", "-R", "--user", "--group",
                       "--prompt", "--chdir"}),
    "doas": frozenset({"-u", "-C"}), "chroot": frozenset(), "xargs": frozenset({"-a", "-d", "-E", "-I", "-L",
                                                                               "-n", "-P", "-s"}),
    "env": frozenset({"-u", "-C", "--unset", "--chdir"}), "flock": frozenset({"-w", "-E", "--timeout"}),
    "taskset": frozenset(), "chrt": frozenset(), "watch": frozenset({"-n", "-d", "--interval"}),
    "timeout": frozenset({"-k", "-s", "--kill-after", "--signal"}),
}
# wrappers whose first argument after the options is not the command (a duration, a lock file …)
_WRAPPER_ARGUMENT = frozenset({"timeout", "flock", "chroot", "taskset", "chrt"})
_RUNNERS = frozenset({"uv", "uvx", "poetry", "pdm", "pipenv", "hatch", "rye", "pipx", "npx"})
_PERSON_ONLY = {("approval", "approve"), ("approval", "reject"), ("conflict", "ack"), ("hook", "install"),
                ("hook", "uninstall"), ("key", "export"), ("key", "import")}

GUARD_REASON = ("only a person decides Tower approvals, acknowledges conflicts, rebaselines the watcher,"
                " serves the control room, changes Tower's hook or moves its audit key: run it yourself in your own shell,"
                " or in the control room")
# commands that are person-only as a whole (`tower serve` hands out the control room)
_PERSON_ONLY_COMMANDS = frozenset({"serve"})
_VALUE_OPTIONS = frozenset({"--db", "--agent", "--worktree"})


@record
class Analysis:
    allow: list[str] = field(default_factory=list)  # one per top-level simple command
    deny: list[str] = field(default_factory=list)  # more views: they can only make the answer stricter
    guard: str | None = None  # the person-only Tower verb the command runs, if any
    risky: str | None = None


def analyse(command: str, cwd: str | None = None) -> Analysis:
    """The texts the policy matches for ``command`` (see the module doc)."""
    parsed = parse(command)
    out = Analysis(risky=parsed.risky)
    budget = [_GLOB_DIRS, _GLOB_MATCHES]
    for cmd in parsed.commands:
        if not cmd.nested:
            out.allow.append(_allow_text(cmd.words))
        _views(cmd.words, out, 0)
        if cwd is not None and not cmd.nested and any(w.glob and not w.expansion for w in cmd.words):
            expanded = _expand(cmd.words, cwd, budget, out)
            if expanded is not None:
                _views(expanded, out, 0)
    if out.risky is None:
        out.risky = parsed.risky
    return out


def _allow_text(words: list[Word]) -> str:
    k = _assignments(words)
    keep = words
    if k < len(words) and words[k].text == "tower":
        # Tower's own variables before `tower` change whose name it acts under, not what runs
        keep = [w for w in words[:k] if not w.text.startswith("TOWER_")] + words[k:]
    return " ".join(w.render() for w in keep)


def _assignments(words: list[Word]) -> int:
    k = 0
    while k < len(words) and _ASSIGNMENT.match(words[k].unquoted):
        k += 1
    return k


def _views(words: list[Word], out: Analysis, depth: int) -> None:
    """Add the deny views and the guard for one simple command (and the strings it runs).

    What a ``sh -c`` string holds adds views only: it never makes the outer
    command risky (the outer program needs a rule of its own to be allowed).
    """

    def note(what: str) -> None:
        if depth == 0 and out.risky is None:
            out.risky = what

    k = _assignments(words)
    argv = words[k:]
    while argv and not argv[0].quoted and (argv[0].text in _KEYWORDS or argv[0].text in _HARMLESS_PREFIXES):
        if argv[0].text in _KEYWORDS:
            note("a shell keyword (if, for, while, case …)")
        argv = argv[1:]
    if any(_BRACES.search(w.unquoted) for w in words):
        note("brace expansion")
    for _ in range(MAX_DEPTH):
        if not argv:
            return
        argv = _normalise(argv)
        out.deny.append(" ".join(w.render() for w in argv))
        reason = _guard([w.text for w in argv])
        if reason and out.guard is None:
            out.guard = reason
        inner = _runs_string(argv)
        if inner is not None:
            if depth + 1 > MAX_DEPTH:
                note("commands nested too deeply")
            else:
                for cmd in parse(inner).commands:
                    _views(cmd.words, out, depth + 1)
        unwrapped = _unwrap(argv)
        if unwrapped is None:
            return
        argv = unwrapped
    note("commands nested too deeply")


def _normalise(argv: list[Word]) -> list[Word]:
    """The program by its name (``/bin/rm`` -> ``rm``), ``python -m tui.cli`` -> ``tower``."""
    first = argv[0].text
    name = first.rsplit("/", 1)[-1] if "/" in first else first
    if _PYTHON.fullmatch(name):
        rest = argv[1:]
        j = 0
        while j < len(rest) and rest[j].text.startswith("-") and rest[j].text not in ("-m", "-c", "-"):
            j += 2 if rest[j].text in ("-X", "-W") else 1
        if j < len(rest):
            t = rest[j].text
            if t == "-m" and j + 1 < len(rest) and rest[j + 1].text in ("tui.cli", "tui"):
                return [plain("tower"), *rest[j + 2:]]
            if t.startswith("-mtui.cli"):
                return [plain("tower"), *rest[j + 1:]]
            if not t.startswith("-") and t.rsplit("/", 1)[-1] == "tower":
                return [plain("tower"), *rest[j + 1:]]
    if name != first:
        return [plain(name), *argv[1:]]
    return argv


def _unwrap(argv: list[Word]) -> list[Word] | None:
    """The command a wrapper runs (``sudo -u x rm …`` -> ``rm …``); None for other programs."""
    name = argv[0].text
    rest = argv[1:]
    if name in _RUNNERS:
        if rest and rest[0].text in ("run", "exec", "x"):
            rest = rest[1:]
        while rest and rest[0].text.startswith("-"):
            rest = rest[1:]
        return rest
    takes = _WRAPPERS.get(name)
    if takes is None:
        return None
    j = 0
    while j < len(rest):
        t = rest[j].text
        if t == "--":
            j += 1
            break
        if name == "env" and _ASSIGNMENT.match(rest[j].unquoted):
            j += 1
            continue
        if not t.startswith("-") or t == "-":
            if name == "env" and t == "-":
                j += 1
                continue
            break
        j += 2 if t in takes else 1
    rest = rest[j:]
    if name in _WRAPPER_ARGUMENT:
        rest = rest[1:]
    return rest


def _runs_string(argv: list[Word]) -> str | None:
    """The shell text a command runs: ``sh -c TEXT``, ``eval …``, ``su -c TEXT``, ``watch …``, ``env -S``."""
    name = argv[0].text
    words = [w.text for w in argv[1:]]
    if name == "eval":
        return " ".join(words)
    if name in _SHELLS or name == "su":
        seen_c = False
        for j, t in enumerate(words):
            if t == "--":
                continue
            if t.startswith("-") and not t.startswith("--") and "c" in t[1:]:
                seen_c = True
                continue
            if t.startswith("-"):
                continue
            if seen_c:
                return t
        return None
    if name == "watch":
        rest = _unwrap(argv) or []
        return " ".join(w.text for w in rest) or None
    if name == "env":
        for j, t in enumerate(words):
            if t in ("-S", "--split-string") and j + 1 < len(words):
                return words[j + 1]
            if t.startswith("--split-string="):
                return t.split("=", 1)[1]
            if t.startswith("-S") and len(t) > 2:
                return t[2:]
    return None


def _guard(values: list[str]) -> str | None:
    """Why this argv runs a person-only Tower verb: ``tower … approval approve``, ``… watch --rebaseline``.

    Any word that names Tower (``tower``, ``/x/tower``, ``-m tui.cli``) followed, anywhere after it,
    by a person-only pair of words. One pass: a long argv costs linear time.
    """
    tower_at = next((k for k, v in enumerate(values)
                     if v.rsplit("/", 1)[-1] == "tower" or v == "tui.cli" or v.startswith("-mtui.cli")), None)
    if tower_at is None:
        return None
    watch_at = None
    command_seen = False
    for k in range(tower_at + 1, len(values)):
        v = values[k]
        if not command_seen and not v.startswith("-") and values[k - 1] not in _VALUE_OPTIONS:
            command_seen = True
            if v in _PERSON_ONLY_COMMANDS:
                return GUARD_REASON
        if k + 1 < len(values) and (v, values[k + 1]) in _PERSON_ONLY:
            return GUARD_REASON
        if v == "watch" and watch_at is None:
            watch_at = k
        elif watch_at is not None and (v == "--rebaseline" or v.startswith("--rebaseline=")):
            return GUARD_REASON
    return None


# -- globs ------------------------------------------------------------------------------


class _TooMany(Exception):
    pass


def _expand(words: list[Word], cwd: str, budget: list[int], out: Analysis) -> list[Word] | None:
    """``words`` with each unquoted glob replaced by the files it matches in ``cwd`` now (as Bash would,
    without dotglob/nullglob); None when nothing matched. A file name that starts with ``-`` where the
    pattern did not, or more matches than Tower checks, makes the command risky."""
    result: list[Word] = []
    changed = False
    for w in words:
        if not w.glob or w.expansion:
            result.append(w)
            continue
        pattern = w.pattern
        if "[^" in w.unquoted:
            pattern = pattern.replace("[^", "[!")
        if re.search(r"\[[:=.]", w.unquoted):
            out.risky = out.risky or "a glob Tower cannot expand"
            result.append(w)
            continue
        try:
            names = _glob(pattern, cwd, budget)
        except _TooMany:
            out.risky = out.risky or "a glob that matches more files than Tower checks"
            return None
        if not names:
            result.append(w)
            continue
        changed = True
        if any(name.startswith("-") for name in names) and not w.text.startswith("-"):
            out.risky = out.risky or "a glob that matches a file name starting with '-'"
        result.extend(plain(name) for name in names)
    return result if changed else None


def _glob(pattern: str, cwd: str, budget: list[int]) -> list[str]:
    import fnmatch

    absolute = pattern.startswith("/")
    segments = [seg for seg in pattern.split("/") if seg]
    found = ["/" if absolute else ""]
    for index, seg in enumerate(segments):
        last = index == len(segments) - 1
        magic = any(ch in seg for ch in "*?[")
        nxt: list[str] = []
        for prefix in found:
            if not magic:
                nxt.append(prefix + seg if prefix in ("", "/") else f"{prefix}/{seg}")
                continue
            budget[0] -= 1
            if budget[0] < 0:
                raise _TooMany
            directory = os.path.join(cwd, prefix) if prefix else cwd
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                name = entry.name
                if name.startswith(".") and not seg.startswith("."):
                    continue
                if not fnmatch.fnmatchcase(name, seg):
                    continue
                if not last:
                    try:
                        if not entry.is_dir():
                            continue
                    except OSError:
                        continue
                nxt.append(prefix + name if prefix in ("", "/") else f"{prefix}/{name}")
                budget[1] -= 1
                if budget[1] < 0:
                    raise _TooMany
        found = nxt
        if not found:
            return []
    # a literal segment after a glob names a path that may not exist: Bash keeps only those that do
    return sorted(p for p in found if os.path.lexists(os.path.join(cwd, p)))
