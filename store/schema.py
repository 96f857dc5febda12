"""The SQLite schema and its forward migrations.

``PRAGMA user_version`` holds the schema version. Each migration is a script
applied inside one ``BEGIN IMMEDIATE`` transaction together with the version
bump, so a crash mid-migration leaves the old version intact.

Times are REAL epoch seconds (the store compares them); ids are
``AUTOINCREMENT`` so a deleted row's id is never handed out again.

One list for every backend: step N brings any backend to schema version N.
Each step holds its SQLite text and its Postgres text; the Postgres texts are
the blocks of docs/postgres.md until that backend lands (``None`` here).
"""

from __future__ import annotations

from typing import NamedTuple


class Migration(NamedTuple):
    sqlite: str
    postgres: str | None = None


MIGRATIONS: list[Migration] = [
    # 1: the whole model
    Migration(sqlite="""
    CREATE TABLE tasks (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        title        TEXT NOT NULL,
        description  TEXT NOT NULL DEFAULT '',
        priority     INTEGER NOT NULL DEFAULT 0,
        status       TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending','leased','done','failed','cancelled')),
        scope        TEXT NOT NULL DEFAULT '[]',
        attempts     INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
        last_error   TEXT,
        created_by   TEXT,
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL
    );
    CREATE INDEX tasks_queue ON tasks(status, priority DESC, id);

    CREATE TABLE task_deps (
        task_id    INTEGER NOT NULL REFERENCES tasks(id),
        depends_on INTEGER NOT NULL REFERENCES tasks(id),
        PRIMARY KEY (task_id, depends_on)
    ) WITHOUT ROWID;
    CREATE INDEX task_deps_reverse ON task_deps(depends_on);

    CREATE TABLE worktrees (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        name       TEXT NOT NULL UNIQUE,
        path       TEXT NOT NULL UNIQUE,
        branch     TEXT,
        agent      TEXT,
        last_seen  REAL,
        active     INTEGER NOT NULL DEFAULT 1
    );

    CREATE TABLE leases (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id      INTEGER NOT NULL REFERENCES tasks(id),
        agent        TEXT NOT NULL,
        worktree     TEXT,
        token        INTEGER NOT NULL UNIQUE,
        status       TEXT NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active','completed','failed','expired','released')),
        ttl          REAL NOT NULL,
        acquired_at  REAL NOT NULL,
        heartbeat_at REAL NOT NULL,
        expires_at   REAL NOT NULL,
        ended_at     REAL
    );
    -- a task is held by at most one active lease, whatever the code above does
    CREATE UNIQUE INDEX leases_one_active_per_task ON leases(task_id) WHERE status = 'active';
    CREATE INDEX leases_active_expiry ON leases(expires_at) WHERE status = 'active';

    CREATE TABLE claims (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        lease_id    INTEGER NOT NULL REFERENCES leases(id),
        path        TEXT NOT NULL,
        worktree    TEXT,
        claimed_at  REAL NOT NULL,
        released_at REAL,
        active      INTEGER NOT NULL DEFAULT 1
    );
    -- at most one active claim per path across all worktrees
    CREATE UNIQUE INDEX claims_one_active_per_path ON claims(path) WHERE active = 1;
    CREATE INDEX claims_by_lease ON claims(lease_id) WHERE active = 1;

    CREATE TABLE approvals (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        kind         TEXT NOT NULL CHECK (kind IN ('command','write','merge','custom')),
        summary      TEXT NOT NULL,
        detail       TEXT NOT NULL DEFAULT '{}',
        status       TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending','approved','rejected','expired','cancelled')),
        requested_by TEXT NOT NULL,
        worktree     TEXT,
        lease_id     INTEGER REFERENCES leases(id),
        task_id      INTEGER REFERENCES tasks(id),
        idem_key     TEXT UNIQUE,
        created_at   REAL NOT NULL,
        decided_at   REAL,
        decided_by   TEXT,
        reason       TEXT
    );
    CREATE INDEX approvals_by_status ON approvals(status, id);

    CREATE TABLE conflicts (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        kind           TEXT NOT NULL
                       CHECK (kind IN ('claimed_by_other','out_of_scope','unleased_write','concurrent_edit')),
        path           TEXT NOT NULL,
        worktree       TEXT NOT NULL,
        other_worktree TEXT,
        lease_id       INTEGER REFERENCES leases(id),
        other_lease_id INTEGER REFERENCES leases(id),
        task_id        INTEGER REFERENCES tasks(id),
        status         TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open','acked','resolved')),
        message        TEXT NOT NULL DEFAULT '',
        detail         TEXT NOT NULL DEFAULT '{}',
        created_at     REAL NOT NULL,
        updated_at     REAL NOT NULL,
        closed_at      REAL,
        closed_by      TEXT
    );
    -- one open conflict per (kind, path, worktrees)
    CREATE UNIQUE INDEX conflicts_one_open ON conflicts(kind, path, worktree, ifnull(other_worktree, ''))
        WHERE status = 'open';
    CREATE INDEX conflicts_by_status ON conflicts(status, id);

    -- the watcher's last known state of every file of every worktree
    CREATE TABLE snapshots (
        worktree TEXT NOT NULL,
        path     TEXT NOT NULL,
        size     INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        hash     TEXT NOT NULL,
        PRIMARY KEY (worktree, path)
    ) WITHOUT ROWID;

    CREATE TABLE audit (
        seq         INTEGER PRIMARY KEY,
        ts          TEXT NOT NULL,
        actor       TEXT NOT NULL,
        event       TEXT NOT NULL,
        task_id     INTEGER,
        lease_id    INTEGER,
        approval_id INTEGER,
        worktree    TEXT,
        path        TEXT,
        details     TEXT NOT NULL DEFAULT '{}',
        prev_hash   TEXT NOT NULL,
        entry_hash  TEXT NOT NULL,
        signature   TEXT NOT NULL
    );
    """),
    # 2: the watcher's baselines. A row exists while a file of a worktree differs
    # from its baseline -- the content the watcher first knew for it -- and keeps
    # that baseline (base_hash NULL: the file did not exist). A file without a
    # row is at its baseline, so the table stays as small as the set of changed
    # files. ``id`` numbers the episode: a file reverted and changed again gets a
    # new row (acknowledged conflicts stay silent only for their own episode).
    Migration(sqlite="""
    CREATE TABLE changed_files (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        worktree   TEXT NOT NULL,
        path       TEXT NOT NULL,
        base_hash  TEXT,
        hash       TEXT,
        changed_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE UNIQUE INDEX changed_files_key ON changed_files(worktree, path);
    CREATE INDEX changed_files_by_path ON changed_files(path);
    """),
    # 3: an approval's idempotency key belongs to its requester: the same key from
    # two requesters names two requests (it was unique across everyone, so one
    # agent's key could answer another agent's request with an old decision).
    # SQLite cannot drop a column's UNIQUE: the table is rebuilt, ids kept.
    Migration(sqlite="""
    CREATE TABLE approvals_v3 (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        kind         TEXT NOT NULL CHECK (kind IN ('command','write','merge','custom')),
        summary      TEXT NOT NULL,
        detail       TEXT NOT NULL DEFAULT '{}',
        status       TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending','approved','rejected','expired','cancelled')),
        requested_by TEXT NOT NULL,
        worktree     TEXT,
        lease_id     INTEGER REFERENCES leases(id),
        task_id      INTEGER REFERENCES tasks(id),
        idem_key     TEXT,
        created_at   REAL NOT NULL,
        decided_at   REAL,
        decided_by   TEXT,
        reason       TEXT
    );
    INSERT INTO approvals_v3 (id, kind, summary, detail, status, requested_by, worktree, lease_id, task_id,
                              idem_key, created_at, decided_at, decided_by, reason)
        SELECT id, kind, summary, detail, status, requested_by, worktree, lease_id, task_id,
               idem_key, created_at, decided_at, decided_by, reason FROM approvals ORDER BY id;
    -- the next id continues after every id ever handed out, as before
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'approvals_v3', seq FROM sqlite_sequence WHERE name = 'approvals'
        AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'approvals_v3');
    UPDATE sqlite_sequence SET seq = max(seq, ifnull((SELECT seq FROM sqlite_sequence WHERE name = 'approvals'), 0))
        WHERE name = 'approvals_v3';
    DROP TABLE approvals;
    ALTER TABLE approvals_v3 RENAME TO approvals;
    CREATE INDEX approvals_by_status ON approvals(status, id);
    CREATE UNIQUE INDEX approvals_one_per_key ON approvals(requested_by, idem_key) WHERE idem_key IS NOT NULL;
    """),
    # 4: agent sessions (store/sessions.py). One row per agent session, holding
    # its latest state; ``stalled`` is written only by the sweep (it is also
    # computed at read time). ``rev`` grows with every write, so a live view
    # reads only the rows changed since it last looked. The tool calls keep the
    # last 50 per session: the trigger prunes in the inserting transaction.
    Migration(sqlite="""
    CREATE TABLE agent_sessions (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        kind           TEXT NOT NULL
                       CHECK (kind IN ('claude-code','codex','gemini','copilot','cursor','cli')),
        session        TEXT NOT NULL,
        agent          TEXT,
        worktree       TEXT,
        lease_id       INTEGER REFERENCES leases(id),
        host           TEXT,
        pid            INTEGER,
        pid_start      INTEGER,
        started_at     REAL NOT NULL,
        last_event     TEXT NOT NULL,
        last_event_at  REAL NOT NULL,
        last_tool      TEXT,
        last_target    TEXT,
        state          TEXT NOT NULL
                       CHECK (state IN ('working','waiting','idle','stalled','ended')),
        state_since    REAL NOT NULL,
        waiting_for    INTEGER REFERENCES approvals(id),
        waiting_reason TEXT,
        rev            INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX agent_sessions_key ON agent_sessions(kind, session);
    CREATE INDEX agent_sessions_rev ON agent_sessions(rev);
    CREATE INDEX agent_sessions_quiet ON agent_sessions(last_event_at);
    CREATE INDEX agent_sessions_live_by_worktree ON agent_sessions(worktree) WHERE state != 'ended';

    CREATE TABLE agent_tool_calls (
        id         INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL REFERENCES agent_sessions(id) ON DELETE CASCADE,
        at         REAL NOT NULL,
        event      TEXT NOT NULL,
        tool       TEXT,
        target     TEXT,
        outcome    TEXT
    );
    CREATE INDEX agent_tool_calls_by_session ON agent_tool_calls(session_id, id);
    CREATE TRIGGER agent_tool_calls_bounded AFTER INSERT ON agent_tool_calls
    BEGIN
        DELETE FROM agent_tool_calls WHERE session_id = NEW.session_id AND id <= (
            SELECT id FROM agent_tool_calls WHERE session_id = NEW.session_id
            ORDER BY id DESC LIMIT 1 OFFSET 50);
    END;
    """),
    # 5: a worktree is (host, path): in a store shared by several machines two hosts
    # can both have /home/dev/repo (docs/postgres.md, "Several hosts"). ``host`` NULL is
    # a one-machine store's worktree, local wherever the store is opened. Names stay
    # unique across hosts (claims, leases and conflicts name worktrees). SQLite cannot
    # drop a column's UNIQUE: the table is rebuilt, ids kept.
    Migration(sqlite="""
    CREATE TABLE worktrees_v5 (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        name       TEXT NOT NULL UNIQUE,
        path       TEXT NOT NULL,
        branch     TEXT,
        agent      TEXT,
        last_seen  REAL,
        active     INTEGER NOT NULL DEFAULT 1,
        host       TEXT
    );
    INSERT INTO worktrees_v5 (id, name, path, branch, agent, last_seen, active)
        SELECT id, name, path, branch, agent, last_seen, active FROM worktrees ORDER BY id;
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'worktrees_v5', seq FROM sqlite_sequence WHERE name = 'worktrees'
        AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'worktrees_v5');
    DROP TABLE worktrees;
    ALTER TABLE worktrees_v5 RENAME TO worktrees;
    CREATE UNIQUE INDEX worktrees_host_path ON worktrees(coalesce(host, ''), path);
    """, postgres="""
    ALTER TABLE worktrees ADD COLUMN host text;
    ALTER TABLE worktrees DROP CONSTRAINT worktrees_path_key;
    CREATE UNIQUE INDEX worktrees_host_path ON worktrees (coalesce(host, ''), path);
    """),
]

SCHEMA_VERSION = len(MIGRATIONS)
