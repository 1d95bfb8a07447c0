#!/usr/bin/env bash
# Make sure what the tests (or the benchmark) need is there:
#   scripts/services.sh [SERVICE...]      (default: redis postgres)
#   redis         Redis 7 answering on 127.0.0.1:6379 (skipped when $BIFROST_TEST_REDIS_URL
#                 names another)
#   redis-server  only the redis-server binary ($BIFROST_TEST_REDIS_SERVER, else on the PATH):
#                 each test session and each benchmark run starts a private one on a free
#                 port (scripts/test, scripts/bench)
#   postgres      PostgreSQL answering on 127.0.0.1:5432, user postgres with trust auth,
#                 database "test" (skipped when $BIFROST_TEST_PG_URL names another)
#   configurable-http-proxy
#                 JupyterHub's proxy for the tests' real hub (tests/hub.py): the pinned
#                 version from the npm registry under .bifrost-dev/node, installed once
#                 (Node.js from the OS packages if missing); $BIFROST_TEST_CHP names another
#   chromium      the browser of the browser tests (scripts/test-ui): Debian's chromium at
#                 /usr/bin/chromium, installed from the OS packages when missing (Playwright
#                 cannot download its own here); $BIFROST_CHROMIUM names another
# A service that already answers is left alone. One that does not is started the way the
# project's machines start it (../shared/SERVICES.md) or, on a laptop without it, installed
# from the OS packages (apt) and started as a throwaway instance under .bifrost-dev/.
# Exits non-zero with a message when a service cannot be brought up: never a silent skip.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="$ROOT/.bifrost-dev"
PYTHON="${VENV_PYTHON:-$ROOT/.venv/bin/python}"

log() { echo "==> $*"; }
die() { echo "error: $*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else return 1; fi
}

apt_install() {
  command -v apt-get >/dev/null || die "$* not installed and no apt-get here; install it with your package manager"
  log "installing $* from the OS packages"
  as_root apt-get update -qq || die "apt-get update failed"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
    || die "apt-get install $* failed"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.1; done
  return 1
}

redis_answers() {
  "$PYTHON" - <<'PY' 2>/dev/null
import redis, sys
sys.exit(0 if redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2).ping() else 1)
PY
}

ensure_redis_binary() {
  if [ -n "${BIFROST_TEST_REDIS_SERVER:-}" ]; then
    [ -x "$BIFROST_TEST_REDIS_SERVER" ] \
      || die "BIFROST_TEST_REDIS_SERVER=$BIFROST_TEST_REDIS_SERVER is not an executable file"
    return 0
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  command -v redis-server >/dev/null || die "redis-server is still not on the PATH"
}

ensure_redis() {
  redis_answers && return 0
  log "Redis is not answering on 127.0.0.1:6379; starting it"
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p "$STATE/redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$STATE/redis" --logfile "$STATE/redis/redis.log" >/dev/null
  wait_for_port 6379 && redis_answers || die "Redis did not start (see $STATE/redis/redis.log)"
}

pg_check() {
  # Prints nothing and succeeds when postgres@127.0.0.1:5432/test accepts us; creates "test".
  "$PYTHON" - <<'PY'
import sys, psycopg
base = "postgresql://postgres@127.0.0.1:5432/"
try:
    psycopg.connect(base + "test", connect_timeout=5).close()
except psycopg.OperationalError as exc:
    if 'database "test" does not exist' not in str(exc):
        sys.exit(f"PostgreSQL refused postgres@127.0.0.1:5432/test: {exc}".strip())
    with psycopg.connect(base + "postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute("CREATE DATABASE test")
PY
}

pg_bindir() {
  if command -v pg_config >/dev/null; then pg_config --bindir; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

start_postgres() {
  if [ "$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null && ls /etc/postgresql/*/main >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
    return
  fi
  local bindir
  bindir="$(pg_bindir)"
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    apt_install postgresql
    if [ "$(id -u)" = 0 ]; then start_postgres; return; fi
    bindir="$(pg_bindir)"
  fi
  [ "$(id -u)" != 0 ] || die "PostgreSQL binaries found but no cluster; as root, create one with pg_createcluster"
  local data="$STATE/pg"
  if [ ! -f "$data/PG_VERSION" ]; then
    "$bindir/initdb" -D "$data" -A trust -U postgres >/dev/null
  fi
  "$bindir/pg_ctl" -D "$data" -l "$STATE/pg.log" -w \
    -o "-p 5432 -c listen_addresses=127.0.0.1 -k $data" start >/dev/null
}

ensure_postgres() {
  if ! port_open 5432; then
    log "PostgreSQL is not answering on 127.0.0.1:5432; starting it"
    start_postgres
    wait_for_port 5432 || die "PostgreSQL did not start"
  fi
  local problem
  problem="$(pg_check 2>&1)" || die "$problem
  The tests need trust auth for user postgres on 127.0.0.1 (a line
  'host all all 127.0.0.1/32 trust' in pg_hba.conf), or set BIFROST_TEST_PG_URL."
}

# Pinned: the tests' hub runs what they were written against. 4.6 needs only Node.js >= 10,
# so Debian's own nodejs (18 on Debian 12) runs it as well as a newer one.
CHP_VERSION="4.6.3"
CHP_PREFIX="$STATE/node"

ensure_proxy() {
  if [ -n "${BIFROST_TEST_CHP:-}" ]; then
    [ -x "$BIFROST_TEST_CHP" ] || die "BIFROST_TEST_CHP=$BIFROST_TEST_CHP is not an executable file"
    return 0
  fi
  local bin="$CHP_PREFIX/node_modules/.bin/configurable-http-proxy"
  local stamp="$CHP_PREFIX/.bifrost-installed"
  if [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$CHP_VERSION" ]; then
    return 0
  fi
  command -v node >/dev/null || apt_install nodejs npm
  command -v npm >/dev/null \
    || die "node is installed but npm is not; install npm (Debian: apt-get install npm)"
  log "installing configurable-http-proxy@$CHP_VERSION from the npm registry into $CHP_PREFIX"
  mkdir -p "$CHP_PREFIX"
  npm install --prefix "$CHP_PREFIX" --no-audit --no-fund --no-save --loglevel=error \
    "configurable-http-proxy@$CHP_VERSION" >/dev/null \
    || die "npm install configurable-http-proxy@$CHP_VERSION failed"
  "$bin" --version >/dev/null 2>&1 \
    || die "configurable-http-proxy does not run with node $(node --version)"
  echo "$CHP_VERSION" > "$stamp"
}

ensure_chromium() {
  local browser="${BIFROST_CHROMIUM:-/usr/bin/chromium}"
  if [ -n "${BIFROST_CHROMIUM:-}" ]; then
    [ -x "$browser" ] || die "BIFROST_CHROMIUM=$browser is not an executable file"
  elif [ ! -x "$browser" ]; then
    apt_install chromium
  fi
  # Debian's wrapper script prints a harmless shell warning on some systems: judge by status.
  "$browser" --headless --version >/dev/null 2>&1 || die "$browser does not run ($browser --version fails)"
}

[ -x "$PYTHON" ] || die "$PYTHON is missing; run scripts/test, which creates it"
[ "$#" -gt 0 ] || set -- redis postgres
for service in "$@"; do
  case "$service" in
    redis)
      if [ -z "${BIFROST_TEST_REDIS_URL:-}" ]; then ensure_redis; fi
      log "services: Redis is answering" ;;
    redis-server)
      ensure_redis_binary
      log "services: redis-server is installed (each test session starts its own)" ;;
    postgres)
      if [ -z "${BIFROST_TEST_PG_URL:-}" ]; then ensure_postgres; fi
      log "services: PostgreSQL is answering" ;;
    configurable-http-proxy)
      ensure_proxy
      log "services: configurable-http-proxy is installed" ;;
    chromium)
      ensure_chromium
      log "services: chromium is installed" ;;
    *) die "unknown service '$service' (redis, redis-server, postgres, configurable-http-proxy or chromium)" ;;
  esac
done
