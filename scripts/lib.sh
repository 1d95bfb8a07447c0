# Shared by scripts/run and scripts/test: make .venv and install the project into it.
# Re-installs only when pyproject.toml changed (a stamp in .venv remembers its hash).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

bootstrap_venv() {
  local extras="$1"
  local python="${PYTHON:-python3}"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV with $($python --version 2>&1)"
    "$python" -m venv "$VENV" || {
      echo "error: '$python -m venv' failed; install Python 3.10+ with venv (Debian: apt-get install python3-venv)" >&2
      return 1
    }
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
  fi
  local stamp="$VENV/.bifrost-installed-$extras"
  local want
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing bifrost_ext[$extras] into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[$extras]"
    echo "$want" > "$stamp"
  fi
}
