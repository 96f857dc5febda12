"""The guard's rules on their own (no server), and what `tower serve` refuses to start with."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_tower, tower_env
from tui.services.serve import (Guard, Refusal, ServeConfig, check_config, child_command, is_loopback_host,
                                new_token, tokens_equal)

TOKEN = new_token()


def guard(**kw) -> Guard:
    return Guard(TOKEN, 8765, loopback_only=kw.pop("loopback_only", True), **kw)


def test_tokens_are_long_random_and_compared_whole():
    assert len(TOKEN) >= 43 and TOKEN != new_token()
    assert tokens_equal(TOKEN, TOKEN)
    for other in ("", TOKEN[:-1], TOKEN + "x", TOKEN.upper() if TOKEN.upper() != TOKEN else TOKEN + "A", "é" * 43):
        assert not tokens_equal(other, TOKEN)


def test_the_token_is_taken_from_the_url_the_cookie_or_a_bearer_header():
    g = guard()
    assert g.token_source({"token": TOKEN}, {}, None) == "query"
    assert g.token_source({}, {"tower_serve_8765": TOKEN}, None) == "cookie"
    assert g.token_source({}, {}, f"Bearer {TOKEN}") == "header"
    assert g.token_source({}, {"tower_serve_8766": TOKEN}, None) is None  # another server's cookie
    assert g.token_source({"token": "nope"}, {"tower_serve_8765": TOKEN}, None) is None
    assert g.token_source({}, {}, f"Basic {TOKEN}") is None
    assert g.token_source({}, {}, None) is None


def test_the_cookie_is_strict_httponly_per_port_and_secure_behind_https():
    assert guard().cookie_header() == f"tower_serve_8765={TOKEN}; Path=/; HttpOnly; SameSite=Strict"
    secure = Guard(TOKEN, 9000, loopback_only=True, public_url="https://t.example", secure_cookie=True)
    assert secure.cookie_header() == f"tower_serve_9000={TOKEN}; Path=/; HttpOnly; SameSite=Strict; Secure"


@pytest.mark.parametrize("origin, host, ok", [
    ("http://127.0.0.1:8765", "127.0.0.1:8765", True),
    ("http://localhost:8765", "localhost:8765", True),
    ("http://LOCALHOST:8765", "localhost:8765", True),
    ("http://[::1]:8765", "[::1]:8765", True),
    ("http://127.0.0.1:9000", "127.0.0.1:8765", False),   # another port: another origin
    ("http://localhost:8765", "127.0.0.1:8765", False),
    ("https://127.0.0.1:8765", "127.0.0.1:8765", False),  # served over http
    ("http://127.0.0.1", "127.0.0.1:80", True),
    ("null", "127.0.0.1:8765", False),
    ("file://", "127.0.0.1:8765", False),
    ("http://127.0.0.1:8765", None, False),
    ("http://127.0.0.1:99999", "127.0.0.1:8765", False),
])
def test_origin_must_be_the_page_s_own(origin, host, ok):
    assert guard().origin_allowed(origin, host) is ok


def test_behind_a_tls_proxy_the_public_url_is_the_page_s_origin():
    g = guard(loopback_only=False, public_url="https://tower.example.com")
    assert g.origin_allowed("https://tower.example.com", "127.0.0.1:8765")
    assert g.origin_allowed("https://tower.example.com:443", "127.0.0.1:8765")
    assert not g.origin_allowed("http://tower.example.com", "127.0.0.1:8765")
    assert not g.origin_allowed("https://evil.tower.example.com", "127.0.0.1:8765")
    assert not g.origin_allowed("https://tower.example.com.evil.example", "127.0.0.1:8765")
    assert guard().origin_allowed(None, "127.0.0.1:8765")  # no Origin: not a browser


@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:8765", True), ("127.0.0.2", True), ("localhost", True), ("[::1]:8765", True),
    ("x.localhost", True), ("evil.example", False), ("127.0.0.1.nip.io", False), ("", False), (None, False),
    ("10.0.0.1:8765", False),
])
def test_a_loopback_server_answers_only_to_loopback_names(host, ok):
    assert guard().host_allowed(host) is ok
    assert guard(loopback_only=False).host_allowed(host) is True  # bound elsewhere: the token alone


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True), ("127.1.2.3", True),
    ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("no-such-host.invalid", False),
])
def test_only_loopback_binds_are_loopback(host, loopback):
    assert is_loopback_host(host) is loopback


def test_the_session_command_is_quoted_for_the_shell_textual_serve_uses():
    db = "/tmp/a b/$(touch pwned)/'x'.db"
    cmd = child_command(db, person="o'neil", watch=False)
    assert cmd.startswith("exec ")
    argv = shlex.split(cmd[len("exec "):])
    assert argv[:3] == [sys.executable, "-m", "tui.served"]
    assert argv[argv.index("--db") + 1] == db and argv[argv.index("--person") + 1] == "o'neil"
    assert "--no-watch" in argv and "--no-watch" not in shlex.split(child_command(db, person="p", watch=True))


def test_the_server_module_loads_nothing_heavy():
    code = ("import sys, tui.services.serve, tui.commands.serve\n"
            "heavy = {'textual', 'aiohttp', 'textual_serve', 'jinja2', 'pydantic'}\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


# -- what `tower serve` refuses to start with (each exits before anything listens)


@pytest.fixture
def store_db(tmp_path):
    db = tmp_path / "tower.db"
    assert run_tower("--db", str(db), "init").code == 0
    return db


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "no-such-host.invalid"])
def test_a_non_loopback_host_needs_an_explicit_flag(host):
    with pytest.raises(Refusal, match="--allow-remote"):
        check_config(ServeConfig(db="x", host=host))
    assert check_config(ServeConfig(db="x", host=host, allow_remote=True)) is False
    assert check_config(ServeConfig(db="x", host="localhost")) is True


def test_the_command_line_refuses_a_non_loopback_host_in_one_line(store_db):
    r = run_tower("--db", str(store_db), "serve", "--host", "0.0.0.0", "--port", "0", timeout=30)
    assert r.code == 2 and r.stdout == ""
    assert "not a loopback address" in r.stderr and "--allow-remote" in r.stderr
    assert "SSH tunnel" in r.stderr and "TLS" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_an_agent_cannot_start_it(store_db):
    for args, env in ((["serve"], {"TOWER_AGENT": "alice"}), (["--agent", "alice", "serve"], None)):
        r = run_tower("--db", str(store_db), *args, "--port", "0", "--json", env=env, timeout=30)
        assert r.code == 4 and r.json["error"]["code"] == "agent_refused"


def test_a_missing_store_is_the_usual_error(tmp_path):
    r = run_tower("--db", str(tmp_path / "none.db"), "serve", "--port", "0", "--json", timeout=30)
    assert r.code == 3 and r.json["ok"] is False


@pytest.mark.parametrize("url", ["ftp://x", "https://x/path", "tower.example.com", "https://x/?a=1", "https://"])
def test_public_url_must_be_an_origin(url):
    with pytest.raises(Refusal, match="--public-url"):
        check_config(ServeConfig(db="x", public_url=url))
    check_config(ServeConfig(db="x", public_url="https://tower.example.com/"))


def test_a_store_url_with_a_password_is_refused_before_it_reaches_a_command_line():
    """Every session is started with the store on its command line (readable by every local
    user with ps): a URL that holds a password is refused, one without it is served."""
    with pytest.raises(Refusal, match="pgpass"):
        check_config(ServeConfig(db="postgresql://tower:s3cret@db.example/tower"))
    check_config(ServeConfig(db="postgresql://tower@db.example/tower"))


def test_the_command_line_refuses_a_password_in_the_store_url():
    r = run_tower("--db", "postgresql://tower:s3cret@127.0.0.1:1/tower", "serve", "--port", "0", timeout=30)
    assert r.code == 2 and "pgpass" in r.stderr and "s3cret" not in r.stderr + r.stdout


def test_the_command_line_refuses_a_bad_public_url(store_db):
    r = run_tower("--db", str(store_db), "serve", "--port", "0", "--public-url", "ftp://x", timeout=30)
    assert r.code == 2 and "--public-url" in r.stderr


def test_a_port_in_use_is_a_clear_error(store_db):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = run_tower("--db", str(store_db), "serve", "--port", str(port), timeout=30)
    assert r.code == 2 and f"cannot listen on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr


def test_the_default_policy_denies_agents_tower_serve(store_db):
    for command in ("tower serve", "tower --db x serve --port 0", "/venv/bin/tower serve &",
                    "ls && tower serve --allow-remote --host 0.0.0.0"):
        r = run_tower("--db", str(store_db), "hook", "check", "--command", command)
        assert r.stdout.splitlines()[-1].startswith("deny:"), (command, r.stdout)
    # Linear in the command's length: "--x y" pairs must not each be parsed two ways (2^40 here).
    r = run_tower("--db", str(store_db), "hook", "check", "--command", "tower " + "--a b " * 40 + "x", timeout=30)
    assert r.stdout.splitlines()[-1].startswith("allow:")
    for command in ("tower task add 'serve static files'", "tower task list"):
        r = run_tower("--db", str(store_db), "hook", "check", "--command", command)
        assert r.stdout.splitlines()[-1].startswith("allow:"), (command, r.stdout)


def test_a_session_s_errors_reach_the_server_s_terminal_escaped(tmp_path):
    """textual-serve copies a session's stderr to the person's terminal: stored text must not act on it."""
    db = tmp_path / "x\x1b]0;pwned\x07.db"  # a name that reaches the error message
    code = ("import sys\nfrom tui.served import child_main\n"
            f"child_main(['--db', {str(db)!r}, '--person', 'p', '--parent', str(__import__('os').getppid())])\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env={**tower_env(), "TOWER_AGENT": "mallory"})
    assert r.returncode == 3, r.stderr
    assert "\x1b" not in r.stderr and "\\e]0;pwned" in r.stderr
