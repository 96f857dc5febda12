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

from core.records import record


@record(frozen=True)
class Migration:
    sqlite: str
    postgres: str | None = None


# The Postgres text of each step (docs/postgres.md explains each piece).
_PG_1 = """
    CREATE TABLE tower_meta (
        singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        schema_version integer NOT NULL,
        key_id         text,  -- fingerprint of the audit key, never the key (see "The audit chain on a shared database")
        created_at     double precision NOT NULL DEFAULT extract(epoch FROM clock_timestamp())
    );
    INSERT INTO tower_meta (schema_version) VALUES (0);

    CREATE TABLE tasks (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        title        text NOT NULL,
        description  text NOT NULL DEFAULT '',
        priority     integer NOT NULL DEFAULT 0,
        status       text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending','leased','done','failed','cancelled')),
        scope        text NOT NULL DEFAULT '[]',
        attempts     integer NOT NULL DEFAULT 0,
        max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
        last_error   text,
        created_by   text,
        created_at   double precision NOT NULL,
        updated_at   double precision NOT NULL
    );
    CREATE INDEX tasks_queue ON tasks (status, priority DESC, id);

    CREATE TABLE task_deps (
        task_id    bigint NOT NULL REFERENCES tasks(id),
        depends_on bigint NOT NULL REFERENCES tasks(id),
        PRIMARY KEY (task_id, depends_on)
    );
    CREATE INDEX task_deps_reverse ON task_deps (depends_on);

    CREATE TABLE worktrees (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name       text NOT NULL UNIQUE,
        path       text NOT NULL UNIQUE,
        branch     text,
        agent      text,
        last_seen  double precision,
        active     smallint NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
    );

    CREATE TABLE leases (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        task_id      bigint NOT NULL REFERENCES tasks(id),
        agent        text NOT NULL,
        worktree     text,
        token        bigint NOT NULL UNIQUE,
        status       text NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active','completed','failed','expired','released')),
        ttl          double precision NOT NULL,
        acquired_at  double precision NOT NULL,
        heartbeat_at double precision NOT NULL,
        expires_at   double precision NOT NULL,
        ended_at     double precision
    );
    -- a task is held by at most one active lease, whatever the code above does
    CREATE UNIQUE INDEX leases_one_active_per_task ON leases (task_id) WHERE status = 'active';
    CREATE INDEX leases_active_expiry ON leases (expires_at) WHERE status = 'active';

    CREATE TABLE claims (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        lease_id    bigint NOT NULL REFERENCES leases(id),
        path        text NOT NULL,
        worktree    text,
        claimed_at  double precision NOT NULL,
        released_at double precision,
        active      smallint NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
    );
    -- at most one active claim per path across all worktrees of all hosts
    CREATE UNIQUE INDEX claims_one_active_per_path ON claims (path) WHERE active = 1;
    CREATE INDEX claims_by_lease ON claims (lease_id) WHERE active = 1;

    CREATE TABLE approvals (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kind         text NOT NULL CHECK (kind IN ('command','write','merge','custom')),
        summary      text NOT NULL,
        detail       text NOT NULL DEFAULT '{}',
        status       text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending','approved','rejected','expired','cancelled')),
        requested_by text NOT NULL,
        worktree     text,
        lease_id     bigint REFERENCES leases(id),
        task_id      bigint REFERENCES tasks(id),
        idem_key     text UNIQUE,
        created_at   double precision NOT NULL,
        decided_at   double precision,
        decided_by   text,
        reason       text
    );
    CREATE INDEX approvals_by_status ON approvals (status, id);

    CREATE TABLE conflicts (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kind           text NOT NULL
                       CHECK (kind IN ('claimed_by_other','out_of_scope','unleased_write','concurrent_edit')),
        path           text NOT NULL,
        worktree       text NOT NULL,
        other_worktree text,
        lease_id       bigint REFERENCES leases(id),
        other_lease_id bigint REFERENCES leases(id),
        task_id        bigint REFERENCES tasks(id),
        status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open','acked','resolved')),
        message        text NOT NULL DEFAULT '',
        detail         text NOT NULL DEFAULT '{}',
        created_at     double precision NOT NULL,
        updated_at     double precision NOT NULL,
        closed_at      double precision,
        closed_by      text
    );
    -- one open conflict per (kind, path, worktrees)
    CREATE UNIQUE INDEX conflicts_one_open ON conflicts (kind, path, worktree, coalesce(other_worktree, ''))
        WHERE status = 'open';
    CREATE INDEX conflicts_by_status ON conflicts (status, id);

    -- the watcher's last known state of every file of every worktree
    CREATE TABLE snapshots (
        worktree text NOT NULL,
        path     text NOT NULL,
        size     bigint NOT NULL,
        mtime_ns bigint NOT NULL,
        hash     text NOT NULL,
        PRIMARY KEY (worktree, path)
    );

    CREATE TABLE audit (
        seq         bigint PRIMARY KEY CHECK (seq >= 1),
        ts          text NOT NULL,
        actor       text NOT NULL,
        event       text NOT NULL,
        task_id     bigint,
        lease_id    bigint,
        approval_id bigint,
        worktree    text,
        path        text,
        details     text NOT NULL DEFAULT '{}',
        prev_hash   text NOT NULL,
        entry_hash  text NOT NULL,
        signature   text NOT NULL
    );

    -- The chain's head, one row. Every append locks it, checks that the new event
    -- extends it, and moves it: two appenders can never link to the same event,
    -- whatever the code above does, and a tail cut off with DELETE leaves the head
    -- pointing past the end of the log, which verify reports.
    CREATE TABLE audit_head (
        singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        seq        bigint NOT NULL,
        entry_hash text NOT NULL
    );
    INSERT INTO audit_head (seq, entry_hash) VALUES (0, repeat('0', 64));

    -- SECURITY DEFINER: agents append to the chain without the right to move its head
    CREATE FUNCTION tower_audit_append() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    DECLARE
        head audit_head%ROWTYPE;
    BEGIN
        SELECT * INTO head FROM audit_head FOR UPDATE;
        IF NEW.seq <> head.seq + 1 OR NEW.prev_hash <> head.entry_hash THEN
            -- the writer read a head that another append has moved since: retry the verb
            RAISE EXCEPTION 'audit event % does not extend the head (seq %)', NEW.seq, head.seq
                USING ERRCODE = 'serialization_failure';
        END IF;
        UPDATE audit_head SET seq = NEW.seq, entry_hash = NEW.entry_hash;
        RETURN NEW;
    END $$;
    CREATE TRIGGER audit_append BEFORE INSERT ON audit
        FOR EACH ROW EXECUTE FUNCTION tower_audit_append();

    -- The writer gate: the first statement of every write transaction. Waiters queue in
    -- the lock manager in arrival order; the lock ends with the transaction (COMMIT,
    -- ROLLBACK, or the session's end). Returns the server's clock, read once the gate is
    -- held: one clock for every host, increasing in commit order.
    CREATE FUNCTION tower_write_gate() RETURNS double precision
    LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock(5495117, 1);
        RETURN extract(epoch FROM clock_timestamp());
    END $$;

    -- The change signal: one notification per committed transaction that touched
    -- coordination state (the same channel and payload in one transaction are delivered
    -- once), none on rollback. The watcher's caches (snapshots, changed_files) wake nobody.
    CREATE FUNCTION tower_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('tower', '');
        RETURN NULL;
    END $$;
    DO $$
    DECLARE t text;
    BEGIN
        FOREACH t IN ARRAY ARRAY['tasks', 'task_deps', 'worktrees', 'leases', 'claims',
                                 'approvals', 'conflicts', 'audit'] LOOP
            EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I'
                           ' FOR EACH STATEMENT EXECUTE FUNCTION tower_notify()', t || '_notify', t);
        END LOOP;
    END $$;

    -- Only a person decides (DESIGN: deciding an approval and acknowledging a conflict are
    -- a person's acts). Inert until the role tower_person exists (see "Roles"); then a
    -- database user outside it cannot approve, reject or acknowledge, whatever it runs.
    CREATE FUNCTION tower_person_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.status IS DISTINCT FROM OLD.status
           AND NEW.status IN ('approved', 'rejected', 'acked')
           AND EXISTS (SELECT FROM pg_roles WHERE rolname = 'tower_person')
           AND NOT pg_has_role(current_user, 'tower_person', 'MEMBER') THEN
            RAISE EXCEPTION '% may not set % to %: only a person decides', current_user, TG_TABLE_NAME, NEW.status
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER approvals_person_only BEFORE UPDATE OF status ON approvals
        FOR EACH ROW EXECUTE FUNCTION tower_person_only();
    CREATE TRIGGER conflicts_person_only BEFORE UPDATE OF status ON conflicts
        FOR EACH ROW EXECUTE FUNCTION tower_person_only();
"""


_PG_2 = """
    CREATE TABLE changed_files (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        worktree   text NOT NULL,
        path       text NOT NULL,
        base_hash  text,
        hash       text,
        changed_at double precision NOT NULL,
        updated_at double precision NOT NULL
    );
    CREATE UNIQUE INDEX changed_files_key ON changed_files (worktree, path);
    CREATE INDEX changed_files_by_path ON changed_files (path);
"""


_PG_3 = """
    ALTER TABLE approvals DROP CONSTRAINT approvals_idem_key_key;
    CREATE UNIQUE INDEX approvals_one_per_key ON approvals (requested_by, idem_key) WHERE idem_key IS NOT NULL;
"""


_PG_4 = """
    CREATE TABLE agent_sessions (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kind           text NOT NULL
                       CHECK (kind IN ('claude-code','codex','gemini','copilot','cursor','cli')),
        session        text NOT NULL,
        agent          text,
        worktree       text,
        lease_id       bigint REFERENCES leases(id),
        host           text,
        pid            bigint,
        pid_start      bigint,
        started_at     double precision NOT NULL,
        last_event     text NOT NULL,
        last_event_at  double precision NOT NULL,
        last_tool      text,
        last_target    text,
        state          text NOT NULL
                       CHECK (state IN ('working','waiting','idle','stalled','ended')),
        state_since    double precision NOT NULL,
        waiting_for    bigint REFERENCES approvals(id),
        waiting_reason text,
        rev            bigint NOT NULL
    );
    CREATE UNIQUE INDEX agent_sessions_key ON agent_sessions (kind, session);
    CREATE INDEX agent_sessions_rev ON agent_sessions (rev);
    CREATE INDEX agent_sessions_quiet ON agent_sessions (last_event_at);
    CREATE INDEX agent_sessions_live_by_worktree ON agent_sessions (worktree) WHERE state <> 'ended';

    CREATE TABLE agent_tool_calls (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        session_id bigint NOT NULL REFERENCES agent_sessions(id) ON DELETE CASCADE,
        at         double precision NOT NULL,
        event      text NOT NULL,
        tool       text,
        target     text,
        outcome    text
    );
    CREATE INDEX agent_tool_calls_by_session ON agent_tool_calls (session_id, id);

    -- the last 50 tool calls of each session, pruned in the inserting transaction
    CREATE FUNCTION tower_tool_calls_bounded() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM agent_tool_calls WHERE session_id = NEW.session_id AND id <= (
            SELECT id FROM agent_tool_calls WHERE session_id = NEW.session_id ORDER BY id DESC OFFSET 50 LIMIT 1);
        RETURN NULL;
    END $$;
    CREATE TRIGGER agent_tool_calls_bounded AFTER INSERT ON agent_tool_calls
        FOR EACH ROW EXECUTE FUNCTION tower_tool_calls_bounded();

    -- a session's change wakes the control room like any coordination state
    -- (a tool call always updates its session too)
    CREATE TRIGGER agent_sessions_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON agent_sessions
        FOR EACH STATEMENT EXECUTE FUNCTION tower_notify();
"""


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
    """, postgres=_PG_1),
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
    """, postgres=_PG_2),
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
    """, postgres=_PG_3),
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
    """, postgres=_PG_4),
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
