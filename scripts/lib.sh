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

# A kernel environment on another Python version than .venv's, with ipykernel: what the tests
# of kernels on another interpreter run (tests/test_interpreters.py). The interpreter is
# $BIFROST_OTHER_PYTHON, else the newest other 3.x found on the PATH or under pyenv; none is a
# failure, never a silent skip. Prints the environment's python.
OTHER_VENV="$ROOT/.venv-other"

find_other_python() {
  local mine version candidate
  mine="$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  if [ -n "${BIFROST_OTHER_PYTHON:-}" ]; then echo "$BIFROST_OTHER_PYTHON"; return 0; fi
  for version in 3.13 3.12 3.14 3.10 3.11; do
    [ "$version" != "$mine" ] || continue
    for candidate in "/usr/bin/python$version" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/"python$version"; do
      if [ -x "$candidate" ] && "$candidate" -c 'import venv' 2>/dev/null; then
        echo "$candidate"; return 0
      fi
    done
  done
  return 1
}

bootstrap_other_kernel() {
  local python want stamp="$OTHER_VENV/.bifrost-installed"
  python="$(find_other_python)" || {
    echo "error: no Python but $("$VENV/bin/python" --version) here; the tests need a second version" \
         "for a kernel (install e.g. python3.12, or set BIFROST_OTHER_PYTHON)" >&2
    return 1
  }
  want="$python"
  if [ ! -x "$OTHER_VENV/bin/python" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> creating $OTHER_VENV with $("$python" --version 2>&1), for kernels on another Python"
    rm -rf "$OTHER_VENV"
    "$python" -m venv "$OTHER_VENV"
    "$OTHER_VENV/bin/python" -m pip install --quiet --disable-pip-version-check ipykernel
    echo "$want" > "$stamp"
  fi
}
