"""Red team after issue 22: a store secret that still reaches a kernel.

Fails while the hole is open.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.kernels import run_kernel


def test_a_kernelspec_env_template_does_not_hand_the_database_password_to_the_kernel(
    locked_pg_url: str, wheelhouse: Path, tmp_path: Path
) -> None:
    """jupyter_client expands ``${NAME}`` in a kernelspec's ``env`` from the environment it
    is given, before ``_finalize_env``; bifrost-provisioner then keeps every name of the
    kernelspec's ``env`` as it is, password or not. Inside a server the environment is
    scrubbed first, so the template expands to nothing there; with plain jupyter_client,
    nbclient or papermill (``JUPYTER_DEFAULT_PROVISIONER_NAME=bifrost-provisioner``) it
    expands from the full environment, and a kernelspec in the user's own data dir (which
    any kernel can write) saying ``"DB": "${BIFROST_DATABASE_URL}"`` gives every later
    kernel the database's password. Expected: no kernel sees the store's password, whatever
    the kernelspec's env says (as a server already gives)."""
    password = locked_pg_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    spec = tmp_path / "data" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3",
                "language": "python",
                "env": {"DB": "${BIFROST_DATABASE_URL}"},
            }
        )
    )
    env = {
        "BIFROST_DATABASE_URL": locked_pg_url,
        "BIFROST_SITE_DIR": str(tmp_path / "site"),
        "BIFROST_FIND_LINKS": str(wheelhouse),
        "BIFROST_NO_INDEX": "1",
        # the user's data dir before the venv's, as outside a virtualenv
        "JUPYTER_PREFER_ENV_PATH": "0",
    }
    lines = run_kernel(env, tmp_path, "import json, os; print(json.dumps(dict(os.environ)))")
    assert lines[0] == "provisioner: BifrostProvisioner"
    environ = json.loads(lines[-1])
    leaked = sorted(name for name, value in environ.items() if password in value)
    assert leaked == [], f"the kernel holds the database password in {leaked}"
