"""A simulated coding agent that uses only Tower's public command line.

    python -m tui.demo.agent NAME WORKTREE [--speed X] [--role normal|crash|overlap|stall] [--ttl S]

It claims a task, keeps its lease alive, claims the files it will edit,
edits real files in its worktree, asks a person before risky steps, commits,
and finishes (or fails) the task; then takes the next one. It also tells its
hooks what a Gemini CLI session would (``tower hook gemini`` with the
documented SessionStart, BeforeAgent, AfterTool, Notification, AfterAgent and
SessionEnd payloads), so the Agents pane shows it working, waiting, idle,
stalled and ended. Roles:

- ``normal``: stops at its own permission prompt once per task for a while
  (a Notification ``ToolPermission``) before it goes on.
- ``crash``: its session is closed mid-task (after claiming and editing): its
  lease expires, is reaped, and the task goes to another agent.
- ``overlap``: also edits a file that another agent has claimed, in its own
  worktree, so that the watcher raises a ``claimed_by_other`` conflict.
- ``stall``: on its first task, keeps its lease alive but makes no tool call
  for longer than ``TOWER_STALL_AFTER``: the room shows it stalled.

Every line it prints is one JSON object (what it did), for the demo summary.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import uuid
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tui.demo.seed import TASKS, git, tower_argv


class Agent:
    def __init__(self, name: str, worktree: Path, speed: float, role: str, ttl: float) -> None:
        self.name = name
        self.worktree = worktree
        self.speed = max(speed, 0.05)
        self.role = role
        self.ttl = ttl
        self.random = random.Random(name)
        self.stop = threading.Event()
        self.env = {k: v for k, v in os.environ.items() if k not in ("TOWER_DB", "TOWER_WORKTREE")}
        self.env["TOWER_AGENT"] = name
        self.parent = os.getppid()
        self.session = str(uuid.UUID(int=random.Random(f"{name}{time.time()}").getrandbits(128)))
        self.stall_after = float(os.environ.get("TOWER_STALL_AFTER") or 300)
        self.stalled_once = False

    # -- talking to Tower --------------------------------------------------------

    def tower(self, *args: str) -> tuple[int, dict]:
        proc = subprocess.run([*tower_argv(), *args, "--json"], cwd=self.worktree, env=self.env,
                              capture_output=True, text=True)
        try:
            body = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            body = {"ok": False, "error": {"code": "no_output", "message": proc.stderr.strip()}}
        return proc.returncode, body

    def hook(self, event: str, **fields) -> None:
        """What a Gemini CLI session sends its event hooks, through ``tower hook gemini``
        (its answer does not matter to these events; a failure is only logged)."""
        payload = {"session_id": self.session, "transcript_path": f"/tmp/{self.session}.jsonl",
                   "cwd": str(self.worktree), "hook_event_name": event,
                   "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), **fields}
        proc = subprocess.run([*tower_argv(), "hook", "gemini", "--event", event], input=json.dumps(payload),
                              cwd=self.worktree, env=self.env, capture_output=True, text=True)
        if proc.returncode != 0:
            self.say("hook failed", hook=event, error=proc.stderr.strip()[-200:])

    def tool_used(self, tool: str, tool_input: dict) -> None:
        self.hook("AfterTool", tool_name=tool, tool_input=tool_input, tool_response={"llmContent": "ok"})

    def say(self, what: str, **fields) -> None:
        print(json.dumps({"agent": self.name, "event": what, **fields}), flush=True)

    def pause(self, seconds: float) -> bool:
        """Work for a while; True if asked to stop meanwhile (or if the demo that started us is gone)."""
        if os.getppid() != self.parent:  # orphaned: `tower demo` died without stopping us
            self.stop.set()
        return self.stop.wait(seconds / self.speed)

    # -- the loop --------------------------------------------------------------------

    def run(self) -> None:
        idle = 0
        self.hook("SessionStart", source="startup")
        while not self.stop.is_set() and os.getppid() == self.parent:
            code, body = self.tower("task", "claim", "--ttl", str(self.ttl))
            if code == 3:  # nothing eligible right now
                idle += 1
                if self.all_finished():
                    self.say("queue empty")
                    self.hook("SessionEnd", reason="exit")
                    return
                if self.pause(2.0):
                    return
                continue
            if code != 0:
                self.say("claim failed", error=body.get("error"))
                if self.pause(2.0):
                    return
                continue
            idle = 0
            self.work(body["data"])

    def all_finished(self) -> bool:
        code, body = self.tower("task", "list")
        return code == 0 and all(t["status"] in ("done", "failed", "cancelled") for t in body["data"])

    def work(self, lease: dict) -> None:
        lid, task_id = lease["lease_id"], lease["task_id"]
        spec = TASKS[int(task_id[1:]) - 1] if int(task_id[1:]) <= len(TASKS) else None
        files = list(spec.files) if spec else []
        self.say("claimed", lease=lid, task=task_id, title=lease["title"])
        self.hook("BeforeAgent", prompt=f"Work on {task_id}: {lease['title']} (lease {lid})")
        beating = threading.Event()
        beat = threading.Thread(target=self.heartbeat, args=(lid, beating), daemon=True)
        beat.start()
        try:
            self.do_task(lid, task_id, spec, files)
        finally:
            beating.set()

    def heartbeat(self, lid: str, done: threading.Event) -> None:
        while not done.wait(self.ttl / 3):
            code, body = self.tower("lease", "heartbeat", lid)
            if code != 0 and not done.is_set():  # refused after we finished: not news
                self.say("heartbeat refused", lease=lid, error=body.get("error"))
                return

    def do_task(self, lid: str, task_id: str, spec, files: list[str]) -> None:
        for attempt in range(5):
            code, body = self.tower("claim", lid, *files)
            if code == 0:
                break
            self.say("files busy", lease=lid, error=body["error"]["message"])
            if self.pause(3.0):
                return
        else:
            self.tower("task", "fail", lid, "--reason", "files stayed claimed by others")
            self.say("failed", lease=lid, task=task_id, reason="files busy")
            return
        self.say("claimed files", lease=lid, files=files)
        self.tool_used("run_shell_command", {"command": f"tower claim {lid} {' '.join(files)}"})
        if self.role == "stall" and not self.stalled_once:
            # the lease stays alive (the heartbeat thread), the session says nothing
            self.stalled_once = True
            self.say("stalling", lease=lid, seconds=self.stall_after * 3)
            if self.stop.wait(self.stall_after * 3):
                return
        if self.role == "normal":
            self.hook("Notification", notification_type="ToolPermission",
                      message="Tool Confirm Shell: pytest -x tests/ requires execution",
                      details={"type": "exec", "title": "Confirm Shell Command", "command": "pytest -x tests/"})
            if self.pause(4.0):
                return

        for i, rel in enumerate(files):
            if self.pause(self.random.uniform(1.5, 3.0)):
                return
            self.edit(rel, task_id)
            self.tool_used("replace", {"file_path": str(self.worktree / rel), "old_string": "",
                                       "new_string": f"# {task_id}", "instruction": "edit"})
            self.say("edited", lease=lid, path=rel)
            if self.role == "crash" and i == 0:
                self.say("crashing", lease=lid, task=task_id)
                self.hook("SessionEnd", reason="other")  # its terminal closed: no release, no goodbye
                os._exit(17)  # the lease must expire
            if self.role == "overlap" and i == 0:
                self.trespass(lid)

        if spec is not None and spec.approval:
            self.say("asking", lease=lid, summary=spec.approval)
            code, body = self.tower("approval", "request", "--kind", "command", "--summary", spec.approval,
                                    "--lease", lid, "--detail", json.dumps({"command": spec.approval}),
                                    "--key", f"{lid}:{spec.approval}", "--wait",
                                    "--timeout", str(max(10.0, 120.0 / self.speed)))
            if code != 0:
                reason = body.get("error", {}).get("message", "not approved")
                self.tower("task", "fail", lid, "--reason", f"not approved: {reason}")
                self.say("failed", lease=lid, task=task_id, reason=reason)
                return
            self.say("approved", lease=lid)
            if self.pause(1.0):
                return

        git(["add", "-A"], self.worktree)
        try:
            git(["commit", "-q", "-m", f"{task_id}: {spec.title if spec else 'work'}"], self.worktree)
        except subprocess.CalledProcessError:
            pass  # nothing to commit
        self.tool_used("run_shell_command", {"command": f"git commit -m '{task_id}'"})
        if self.random.random() < 0.15:
            code, body = self.tower("task", "fail", lid, "--reason", "tests failed: test_cart.py::test_total")
            self.say("failed", lease=lid, task=task_id, reason="tests failed")
        else:
            code, body = self.tower("task", "done", lid)
            self.say("done" if code == 0 else "done refused", lease=lid, task=task_id,
                     error=body.get("error"))
        self.hook("AfterAgent", prompt=f"Work on {task_id}", prompt_response="done", stop_hook_active=False)
        self.pause(3.0)  # idle between turns

    def edit(self, rel: str, task_id: str) -> None:
        path = self.worktree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = f"# {task_id} ({self.name}): edited at {time.strftime('%H:%M:%S')}\n"
        with path.open("a") as fh:
            fh.write(stamp)

    def trespass(self, own_lease: str) -> None:
        """Write a file another agent holds: what the watcher exists to catch."""
        for _ in range(5):
            code, body = self.tower("lease", "list")
            if code != 0:
                return
            for lease in body["data"]:
                if lease["id"] != own_lease and lease["claims"]:
                    rel = lease["claims"][0]
                    self.edit(rel, "oops")
                    self.say("trespassed", path=rel, holder=lease["id"])
                    return
            if self.pause(1.0):  # nobody holds a file yet: look again shortly
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("worktree", type=Path)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--role", choices=["normal", "crash", "overlap", "stall"], default="normal")
    parser.add_argument("--ttl", type=float, default=15.0)
    args = parser.parse_args()
    agent = Agent(args.name, args.worktree, args.speed, args.role, args.ttl)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop.set())
    try:
        agent.run()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
