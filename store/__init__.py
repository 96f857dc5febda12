"""Tower's persistence: one async verb per state change, over one backend (SQLite today).

    async with Store(path, actor="agent-a") as store:
        lease = await store.claim_task(agent="agent-a", worktree="wt-a")

Every verb is a single write transaction that appends its audit event. The
command line and the control room call the same verbs; neither writes SQL.
The verbs write SQL against the backend seam (store/backend/); what a lease's
end involves lives in one place (store/lifecycle.py); every entity is read
through one SELECT into one row type (store/rows.py, core/models.py).
"""

from __future__ import annotations

from store.approvals import ApprovalVerbs
from store.audit_log import AuditVerbs
from store.channels import ChannelVerbs
from store.conflicts import ConflictVerbs
from store.db import run_inline
from store.leases import LeaseVerbs
from store.sessions import SessionVerbs
from store.tasks import TaskVerbs
from store.views import ViewVerbs
from store.worktrees import WorktreeVerbs


class Store(TaskVerbs, LeaseVerbs, WorktreeVerbs, ApprovalVerbs, ConflictVerbs, AuditVerbs, ViewVerbs,
            ChannelVerbs, SessionVerbs):
    """The store: open with ``async with Store(path)``; ``create=True`` for ``tower init``."""


__all__ = ["Store", "run_inline"]
