"""Tower's persistence: one SQLite file, one async verb per state change.

    async with Store(path, actor="agent-a") as store:
        lease = await store.claim_task(agent="agent-a", worktree="wt-a")

Every verb is a single ``BEGIN IMMEDIATE`` transaction that appends its audit
event. The command line and the control room call the same verbs; neither
writes SQL.
"""

from __future__ import annotations

from store.approvals import ApprovalVerbs
from store.audit_log import AuditVerbs
from store.channels import ChannelVerbs
from store.conflicts import ConflictVerbs
from store.sessions import SessionVerbs
from store.tasks import TaskVerbs
from store.views import ViewVerbs


class Store(TaskVerbs, ApprovalVerbs, ConflictVerbs, AuditVerbs, ViewVerbs, ChannelVerbs, SessionVerbs):
    """The store: open with ``async with Store(path)``; ``create=True`` for ``tower init``."""


__all__ = ["Store"]
