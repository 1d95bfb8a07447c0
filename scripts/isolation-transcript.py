"""Show a cross-user attempt being refused by PostgreSQL and Redis themselves.

On throwaway stores of its own (a PostgreSQL cluster that checks passwords, a Redis whose
``default`` user needs one): grant alice and bob, save a requirement for alice, then try, as
bob with bob's own URLs, to read and change alice's workspace with ``jupyter bifrost``,
``psql`` and ``redis-cli``. Prints the transcript shown in docs/jupyterhub.md. Run from the
repository root: ``.venv/bin/python scripts/isolation-transcript.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import ThrowawayPostgres, ThrowawayRedis  # noqa: E402
from tests.wheels import build_wheel  # noqa: E402

JUPYTER = str(Path(sys.executable).parent / "jupyter")
ALICE_ROW = (
    "INSERT INTO workspace_files (workspace, path, entity_type, content, content_hash, version,"
    " created_at, updated_at) VALUES ('alice', 'requirements.txt', 'requirements',"
    " 'pandas==2.2.3', 'h', 1, now(), now())"
)


def main() -> None:
    """Start the stores, grant, attack, print, clean up."""
    postgres = ThrowawayPostgres(password="admin-secret").start()
    cache = ThrowawayRedis(Path(tempfile.mkdtemp()), password="admin-secret").start()
    home = Path(tempfile.mkdtemp())
    build_wheel(home, "evil", "1.0")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BIFROST_", "JUPYTER"))}
    base.update(
        HOME=str(home),
        BIFROST_SITE_DIR=str(home / "site"),
        BIFROST_NO_INDEX="1",
        BIFROST_FIND_LINKS=str(home),
    )
    try:
        admin = {**base, "BIFROST_DATABASE_URL": postgres.url, "BIFROST_REDIS_URL": cache.url}
        grants = {}
        for workspace in ("alice", "bob"):
            command = [JUPYTER, "bifrost", "grant", workspace, "--json"]
            done = subprocess.run(command, env=admin, capture_output=True, text=True, check=True)
            grants[workspace] = json.loads(done.stdout)
        subprocess.run(["psql", postgres.url, "-qc", ALICE_ROW], check=True)
        attack(base, grants["bob"], cache.port)
        print("# afterwards, as the administrator")
        query = "SELECT workspace, content, version FROM workspace_files"
        done = subprocess.run(["psql", postgres.url, "-c", query], capture_output=True, text=True)
        print("\n".join("  " + line for line in done.stdout.rstrip().splitlines()))
    finally:
        postgres.remove()
        cache.stop()


def attack(base: dict[str, str], bob: dict[str, str], redis_port: int) -> None:
    """Every attempt bob can make with his own URLs, each shown with what it answered."""
    env = {
        **base,
        "BIFROST_DATABASE_URL": bob["database_url"],
        "BIFROST_REDIS_URL": bob["redis_url"],
        "BIFROST_WORKSPACE": "bob",
    }
    host = bob["database_url"].rsplit("@", 1)[1]

    def show(*args: str) -> None:
        shown = " ".join(arg if " " not in arg else repr(arg) for arg in args)
        shown = shown.replace(JUPYTER, "jupyter").replace(bob["database_url"], "$BOB_DATABASE_URL")
        print("$ " + shown.replace(bob["redis_url"], "$BOB_REDIS_URL"))
        done = subprocess.run(args, env=env, capture_output=True, text=True)
        for line in (done.stdout + done.stderr).replace(host, "db:5432/postgres").splitlines():
            if "UserWarning" not in line and "warn(" not in line:
                print("  " + line)

    print("# bob, with bob's own URLs (the most his kernel can find: his server's environment)")
    show(JUPYTER, "bifrost", "--workspace", "alice", "install", "evil")
    show(JUPYTER, "bifrost", "--workspace", "alice", "history")
    for statement in (
        "SELECT workspace, content FROM workspace_files",
        "UPDATE workspace_files SET content = 'evil' WHERE workspace = 'alice'",
        ALICE_ROW.replace("pandas==2.2.3", "evil"),
        "BEGIN; LOCK TABLE workspace_files IN ACCESS EXCLUSIVE MODE",
        "ALTER TABLE workspace_files DISABLE ROW LEVEL SECURITY",
        "SELECT secret FROM bifrost_workspace_grants",
    ):
        show("psql", bob["database_url"], "-c", statement)
    cli = ["redis-cli", "-u", bob["redis_url"], "--no-auth-warning"]
    show(*cli, "GET", "bifrost:requirements:content:alice")
    show(*cli, "SET", "bifrost:requirements:content:alice", "evil")
    show(*cli, "PUBLISH", "bifrost:requirements:events:alice", "evil")
    show(*cli, "KEYS", "*")
    show("redis-cli", "-p", str(redis_port), "GET", "bifrost:requirements:content:alice")


if __name__ == "__main__":
    main()
