"""A database client that lives on one host of a test network and does what it is told.

Reads one JSON command per line on stdin, answers one JSON line on stdout:
``{"op": "connect"}``, ``{"op": "query", "sql": "..."}``, ``{"op": "close"}``.
Answers carry ``ok``, ``rows`` or ``error`` (the exception's class and first
line), and ``elapsed`` seconds. The connection string is argv[1]; a broken
connection is not retried: the test says when to reconnect.
"""

from __future__ import annotations

import json
import sys
import time

import psycopg


def main() -> None:
    dsn = sys.argv[1]
    conn: psycopg.Connection | None = None
    for line in sys.stdin:
        cmd = json.loads(line)
        started = time.monotonic()
        answer: dict = {"ok": True}
        try:
            if cmd["op"] == "connect":
                if conn is not None:
                    conn.close()
                conn = psycopg.connect(dsn, autocommit=True)
            elif cmd["op"] == "query":
                if conn is None:
                    raise RuntimeError("not connected")
                cur = conn.execute(cmd["sql"])
                answer["rows"] = [list(r) for r in cur.fetchall()] if cur.description else None
            elif cmd["op"] == "close":
                if conn is not None:
                    conn.close()
                conn = None
        except Exception as exc:  # the test asserts on the kind of failure
            answer = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"}
        answer["elapsed"] = round(time.monotonic() - started, 3)
        print(json.dumps(answer, default=str), flush=True)


if __name__ == "__main__":
    main()
