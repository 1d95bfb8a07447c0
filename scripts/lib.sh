# Shared by scripts/run and scripts/test: make .venv, install the project into it and build
# the Packages panel (the JupyterLab extension in src/) into bifrost_ext/labextension, linked
# into .venv so `jupyter lab` loads it. Each step runs only when its inputs changed: stamps
# remember pyproject.toml's hash (.venv), package.json + yarn.lock's (node_modules), and the
# last front-end build (lib/).

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
    # pip would otherwise uninstall and reinstall the labextension's files through the
    # development link, inside bifrost_ext/labextension; the link is made again below.
    if [ -L "$LABEXT_LINK" ]; then rm "$LABEXT_LINK"; fi
    # The panel is built below with .venv's jlpm, incrementally: not by the build hook.
    SKIP_JUPYTER_BUILDER=1 "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[$extras]"
    echo "$want" > "$stamp"
  fi
  build_labextension
}

# The Packages panel. Building it needs Node.js as rspack wants it (^20.19 or >=22.12); a
# wheel of bifrost_ext carries it prebuilt, so only building from source needs Node.
LABEXT_LINK="$VENV/share/jupyter/labextensions/bifrost-ext"

node_ok() {
  local version="${1#v}" major minor
  version="${version#*:}"  # a Debian epoch
  major="${version%%.*}"
  minor="${version#*.}"
  minor="${minor%%.*}"
  [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || return 1
  (( (major == 20 && minor >= 19) || (major == 22 && minor >= 12) || major >= 23 ))
}

ensure_node() {
  local found="" candidate=""
  if command -v node >/dev/null; then found="$(node --version)"; fi
  if [ -n "$found" ] && node_ok "$found"; then return 0; fi
  if command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; }; then
    local sudo=()
    if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq >/dev/null 2>&1 || true
    candidate="$(apt-cache policy nodejs 2>/dev/null | awk '/Candidate:/ {print $2}')"
    if [ -n "$candidate" ] && [ "$candidate" != "(none)" ] && node_ok "$candidate"; then
      echo "==> installing Node.js $candidate from the OS packages (to build the Packages panel)"
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs >/dev/null \
        && node_ok "$(node --version)" && return 0
    fi
  fi
  {
    echo "error: building the Packages panel (JupyterLab extension) needs Node.js ^20.19 or >=22.12;"
    echo "       found: ${found:-no node on the PATH}."
    if [ -n "$candidate" ] && [ "$candidate" != "(none)" ]; then
      if node_ok "$candidate"; then
        echo "       Installing the OS package nodejs $candidate did not give a working node."
      else
        echo "       The OS package nodejs here is $candidate: too old, so it was not installed."
      fi
    fi
    echo "       Install Node.js 22 LTS from https://nodejs.org/en/download (or: nvm install 22),"
    echo "       then run this again. (A wheel of bifrost_ext carries the panel prebuilt: only"
    echo "       a build from source needs Node.)"
  } >&2
  return 1
}

# Run a command in $ROOT with .venv's tools first on the PATH; its output only if it fails.
run_quietly() {
  local what="$1" output
  shift
  if ! output="$(cd "$ROOT" && PATH="$VENV/bin:$PATH" "$@" 2>&1)"; then
    echo "$output" | tail -40 >&2
    echo "error: $what failed in $ROOT (its output is above)" >&2
    return 1
  fi
}

build_labextension() {
  ensure_node || return 1
  local jlpm="$VENV/bin/jlpm" stamp="$ROOT/node_modules/.bifrost-installed" built="$ROOT/lib/.bifrost-built"
  local want
  want="$(cat "$ROOT/package.json" "$ROOT/yarn.lock" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing the Packages panel's build tools (jlpm install)"
    run_quietly "jlpm install" "$jlpm" install || return 1
    # After the install: it may have updated yarn.lock.
    cat "$ROOT/package.json" "$ROOT/yarn.lock" | sha256sum | cut -d' ' -f1 > "$stamp"
  fi
  if [ ! -f "$built" ] || [ ! -f "$ROOT/bifrost_ext/labextension/package.json" ] \
     || [ -n "$(find "$ROOT/src" "$ROOT/style" "$ROOT/schema" "$ROOT/package.json" \
                     "$ROOT/tsconfig.json" "$stamp" -newer "$built" -print -quit)" ]; then
    echo "==> building the Packages panel (jlpm build)"
    run_quietly "jlpm build" "$jlpm" build || return 1
    touch "$built"
  fi
  if [ "$(readlink "$LABEXT_LINK")" != "$ROOT/bifrost_ext/labextension" ]; then
    echo "==> linking the Packages panel into $VENV"
    "$VENV/bin/jupyter-builder" develop --overwrite "$ROOT" >/dev/null
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
