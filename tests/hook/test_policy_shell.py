"""The policy judges what the shell would run, not the text an agent typed.

An agent must not get Tower's person-only verbs (or anything a deny rule
names) past the policy by quoting, escaping, wrapping or splitting a command,
and what the matcher cannot read is never allowed by a rule alone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.policy import MAX_COMMAND_LENGTH, default_policy, parse_policy
from core.shell import analyse, parse, split_simple
from tests.conftest import run_tower


@pytest.fixture(scope="module")
def policy():
    return default_policy()


# Each runs `tower approval approve|reject`, `tower conflict ack` or `tower watch --rebaseline`
# (or a deny rule's command) once the shell has done its work.
PERSON_ONLY = [
    'tower approval "approve" A1',
    "tower approval 'approve' A1",
    "tower approval appro\\ve A1",
    'tower approval "reject" A1 --reason fine',
    "tower approval ap''prove A1",
    'tower approval "appr"ove A1',
    "tower approval appro\\\nve A1",
    'tower --db "a;b" approval approve A1',
    "tower --json approval approve A1",
    "python -m tui.cli approval approve A1",
    "python3 -I -m tui.cli approval approve A1",
    "/opt/tower/.venv/bin/tower approval 'approve' A1",
    "command tower approval 'approve' A1",
    "env TOWER_AGENT=x tower approval 'approve' A1",
    "TOWER_AGENT=alice tower approval 'approve' A1",
    "nohup tower approval 'approve' A1",
    "timeout 5 tower approval 'approve' A1",
    "sudo -u root tower approval 'approve' A1",
    "sh -c 'tower approval \"approve\" A1'",
    "bash -lc \"tower approval 'approve' A1\"",
    "eval 'tower approval approve A1'",
    "echo A1 | xargs tower approval 'approve'",
    "ls && tower approval 'approve' A1",
    "ls; tower approval 'approve' A1",
    "ls\ntower approval 'approve' A1",
    "true || tower approval 'approve' A1 &",
    "echo $(tower approval 'approve' A1)",
    "echo `tower approval approve A1`",
    "cat <<EOF\n$(tower approval 'approve' A1)\nEOF",
    "tower conflict ack C1",
    'tower conflict "ack" C1',
    "tower watch --rebaseline main",
    "tower watch '--rebaseline' main",
    "tower watch --rebaseline=main",
    "tower hook 'uninstall' claude-code",
    "tower serve",
    "tower --db x.db 'serve' --port 9000",
    "tower key export",
    "tower --json key 'import' --file k",
    "/bin/rm -rf /",
    "sudo /bin/rm -rf ~",
    "bash -c 'rm -rf /'",
    "git push '--force' origin main",
    "git push \"-f\" origin main",
]


@pytest.mark.parametrize("command", PERSON_ONLY)
def test_quoting_and_wrapping_do_not_get_past_a_deny(policy, command):
    verdict = policy.decide("Bash", command=command)
    assert verdict.decision == "deny", verdict


@pytest.mark.parametrize("command", [
    "tower approval 'approve' A1", "python -m tui.cli conflict ack C1", "sh -c 'tower watch --rebaseline x'",
    "tower --agent me serve --host 0.0.0.0",
])
def test_the_person_only_verbs_are_denied_whatever_the_policy_file_says(command):
    anything_goes = parse_policy('default = "allow"\n[[rule]]\ntool = "Bash"\ncommand = "*"\ndecision = "allow"\n')
    verdict = anything_goes.decide("Bash", command=command)
    assert verdict.decision == "deny" and "built in" in verdict.reason, verdict


# What the shell decides only at run time: never allowed by the `tower *` rule alone.
NOT_UNDERSTOOD = [
    "tower approval $X A1",
    "tower approval ${X:-approve} A1",
    "tower approval \"$X\" A1",
    "tower approval $(echo approve) A1",
    "tower approval `echo approve` A1",
    "tower approval $'appr\\x6fve' A1",
    "tower approval appr{o,}ve A1",
    "echo approve; tower approval $_ A1",
    "tower approval 'approve A1",
    "(tower approval approve A1)",
    "if true; then tower task list; fi",
    "for v in approve; do tower approval $v A1; done",
    "tower task list > out.txt",
    "tower task list <(ls)",
    "X=approve tower task list",
]


@pytest.mark.parametrize("command", NOT_UNDERSTOOD)
def test_what_the_matcher_cannot_read_is_not_allowed(policy, command):
    assert policy.decide("Bash", command=command).decision in ("ask", "deny")


ALLOWED = [
    "ls", "ls -la src", "git status", "git log --format='%h %s' -5", 'git log --format="%h %s"',
    '"ls" -la', "l's' -la", "ls # a comment", "grep -rn 'approval approve' src", "pytest -q 2>&1 | tail -20", "ls >/dev/null 2>&1",
    "TOWER_AGENT=agent-a tower task claim", "tower claim L1 src/app.py", "tower approval request -k command -s x",
    "tower approval wait A1", "git status && git diff", "find . -name '*.py'", "echo a#b",
    "git diff HEAD~1 -- src",
]


@pytest.mark.parametrize("command", ALLOWED)
def test_plain_read_only_commands_stay_allowed(policy, command):
    verdict = policy.decide("Bash", command=command)
    assert verdict.decision == "allow", verdict


@pytest.mark.parametrize("command", [":(){ :|:& };:", "ls # tower approval approve A1",
                                     "echo 'tower approval approve A1'"])
def test_deny_rules_still_see_the_command_as_written(policy, command):
    """The rules' regexes also search the raw text: what a deny rule names is denied even when the
    shell would not run it (conservative, and what a person reading the command sees)."""
    assert policy.decide("Bash", command=command).decision == "deny"


def test_globs_are_judged_on_the_files_they_match_now(policy, tmp_path):
    (tmp_path / "approve").write_text("")
    (tmp_path / "notes.md").write_text("")
    cwd = str(tmp_path)
    assert policy.decide("Bash", command="tower approval appro?e A1", cwd=cwd).decision == "deny"
    assert policy.decide("Bash", command="tower approval a*e A1", cwd=cwd).decision == "deny"
    assert policy.decide("Bash", command="cat *.md", cwd=cwd).decision == "allow"
    # a file named like an option turns an allowed command into something else: not allowed
    (tmp_path / "--pre=x.sh").write_text("")
    assert policy.decide("Bash", command="rg foo *", cwd=cwd).decision == "ask"
    assert policy.decide("Bash", command="rg foo '*'", cwd=cwd).decision == "allow"


def test_reasons_name_the_command_as_the_shell_reads_it(policy):
    verdict = policy.decide("Bash", command='ls && tower approval "approve" A1')
    assert verdict.decision == "deny" and "`tower approval approve A1`" in verdict.reason


def test_the_reader_follows_bash():
    assert split_simple("a && b || c | d; e & f\ng |& h")[0] == list("abcdefgh")
    words = [[w.text for w in c.words] for c in parse("a'b'\"c\"\\d e\\\nf # g\nh#i 2>&1 x").commands]
    assert words == [["abcd", "ef"], ["h#i", "x"]]
    assert parse("cat <<'EOF'\n$(rm -rf /)\nEOF\nls").commands[-1].words[0].text == "ls"
    seen = analyse("cat <<EOF\n$(id)\nEOF")
    assert "id" in seen.deny and seen.risky == "a here-document"
    assert analyse("echo '$(id)'").risky is None
    assert analyse("cmd 2>&1 >/dev/null").risky is None
    assert analyse("cmd > out.txt").risky == "an output redirection to a file"
    assert analyse("cmd &> log").risky == "an output redirection to a file"
    assert analyse('echo "$(id)"').risky == "command substitution"


# -- bounded time ---------------------------------------------------------------------------


def test_a_command_longer_than_the_bound_is_denied_unread(policy):
    verdict = policy.decide("Bash", command="ls " + "a" * MAX_COMMAND_LENGTH)
    assert verdict.decision == "deny" and "characters long" in verdict.reason


@pytest.mark.slow
@pytest.mark.parametrize("unit", ["tower ", "git ", "rm "])
def test_the_hook_answers_within_its_deadline_on_a_huge_command(repo, unit):
    """60 KB of words that each start a rule's regex: the check is cut short, the hook still answers."""
    from tests.hook.test_hook_claude_code import bash
    from tests.hook.test_hook_failclosed import answered, run_hook

    assert run_tower("init", cwd=repo).code == 0
    command = unit * ((MAX_COMMAND_LENGTH - 4096) // len(unit))
    t0 = time.monotonic()
    decision, reason = answered(run_hook(bash(command, repo), repo, "--deadline", "5", timeout=120))
    took = time.monotonic() - t0
    assert took < 5, took
    assert decision in ("deny", "ask"), reason
    json.dumps(reason)


def test_check_explains_the_shell_reading(repo):
    assert run_tower("init", cwd=repo).code == 0
    r = run_tower("--json", "hook", "check", "--command", "tower approval 'approve' A1", cwd=repo)
    assert r.code == 0 and r.data["verdict"]["decision"] == "deny"
    (Path(repo) / "approve").write_text("")
    r = run_tower("--json", "hook", "check", "--command", "tower approval appro?e A1", cwd=repo)
    assert r.data["verdict"]["decision"] == "deny"
