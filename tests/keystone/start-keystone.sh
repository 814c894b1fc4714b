#!/usr/bin/env bash
# start-keystone.sh DIR PORT
#
# Starts a real OpenStack Keystone (Debian bookworm package python3-keystone,
# 22.x "Zed") on 127.0.0.1:PORT for tests: sqlite database, fernet tokens and
# all state/logs inside DIR, no Apache, no network besides loopback.
#
# On success it prints, on stdout only:
#   KEYSTONE_URL=http://127.0.0.1:PORT/v3
#   KEYSTONE_ADMIN_PROJECT_ID=<id>
#   KEYSTONE_DEMO_PROJECT_ID=<id>
#   KEYSTONE_ADMIN_USER_ID=<id>     (user admin / password secret, role admin on project admin)
#   KEYSTONE_DEMO_USER_ID=<id>      (user demo  / password secret, role member on project demo)
#   KEYSTONE_PID=<pid>              (also written to DIR/keystone.pid)
# Everything else goes to stderr or to files in DIR:
#   keystone.conf, keystone.db, fernet-keys/, credential-keys/,
#   keystone.log (keystone's own log), server.log (server stdout/stderr),
#   access.log (one line per HTTP request), manage.log (keystone-manage output),
#   setup.log (demo project/user creation), apt.log (only if it installed).
#
# Stop it with: kill "$(cat DIR/keystone.pid)"   (the server runs in its own
# session via setsid and keeps no pipe of the caller open, so a caller reading
# this script's stdout to EOF, e.g. Go's exec.Cmd.Output, returns at once.)
#
# The server serialises requests (see keystone-server.py written below): fine
# for tests, ~20-60 ms per request; 4 concurrent clients got no errors.
#
# Environment knobs (optional):
#   KEYSTONE_TOKEN_EXPIRATION  token lifetime in seconds (default 3600)
#   KEYSTONE_START_TIMEOUT     seconds to wait for the API to answer (default 60)
#   KEYSTONE_DEBUG=1           debug logging in DIR/keystone.log
#   KEYSTONE_SEPARATE_MANAGE=1 run the keystone-manage binary per sub-command
#   KEYSTONE_GC_LOG=1          log the per-request garbage collection to server.log
set -euo pipefail

log() { echo "start-keystone: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ $# -eq 2 ] || die "usage: $0 DIR PORT"
DIR=$1
PORT=$2
case "$PORT" in ''|*[!0-9]*) die "PORT must be a number, got '$PORT'";; esac
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
[ ! -e "$DIR/keystone.db" ] || die "$DIR already holds a keystone.db; use a fresh directory"

TOKEN_EXPIRATION=${KEYSTONE_TOKEN_EXPIRATION:-3600}
START_TIMEOUT=${KEYSTONE_START_TIMEOUT:-60}
DEBUG=false
[ "${KEYSTONE_DEBUG:-0}" = 1 ] && DEBUG=true

# Debian's keystone lives in /usr/lib/python3/dist-packages: always use the
# system interpreter (a pyenv/venv python3 earlier in PATH cannot import it).
PY=/usr/bin/python3
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV || true
# Only loopback is ever contacted: make sure no proxy gets in the way.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY || true
export no_proxy='*' NO_PROXY='*'

# ---------------------------------------------------------------- 1. install
# python3-keystone carries keystone-manage and the WSGI app. The `keystone`
# package is NOT needed (it adds uwsgi, apparmor plugin, dbconfig-common and a
# postinst that configures /etc/keystone and a system service).
installed() {
  command -v keystone-manage >/dev/null 2>&1 &&
  [ "$(dpkg-query -W -f='${Status}' python3-keystone 2>/dev/null)" = "install ok installed" ]
}
if ! installed; then
  log "installing python3-keystone with apt-get (one-time, ~20 s)"
  export DEBIAN_FRONTEND=noninteractive
  APT=(apt-get -y -qq -o DPkg::Lock::Timeout=300)
  if ! "${APT[@]}" install --no-install-recommends python3-keystone >"$DIR/apt.log" 2>&1; then
    "${APT[@]}" update >>"$DIR/apt.log" 2>&1 || true
    "${APT[@]}" install --no-install-recommends python3-keystone >>"$DIR/apt.log" 2>&1 \
      || { tail -20 "$DIR/apt.log" >&2; die "apt-get install python3-keystone failed"; }
  fi
fi
command -v keystone-manage >/dev/null 2>&1 || die "keystone-manage not found after install"

# Refuse to start if something already listens on the port.
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then die "127.0.0.1:$PORT is already in use"; fi

# ---------------------------------------------------------------- 2. config
URL="http://127.0.0.1:$PORT/v3"
mkdir -p "$DIR/lock"
cat >"$DIR/keystone.conf" <<EOF
[DEFAULT]
debug = $DEBUG
use_stderr = false
log_file = $DIR/keystone.log
public_endpoint = http://127.0.0.1:$PORT/

[database]
# check_same_thread=false: see the note in keystone-server.py
connection = sqlite:///$DIR/keystone.db?check_same_thread=false

[token]
provider = fernet
expiration = $TOKEN_EXPIRATION

[fernet_tokens]
key_repository = $DIR/fernet-keys

[fernet_receipts]
key_repository = $DIR/fernet-keys

[credential]
key_repository = $DIR/credential-keys

[identity]
# bcrypt minimum: keeps every password authentication fast (default 12 ~ 0.25 s)
password_hash_rounds = 4

[cache]
# In-process cache: without it one token validation runs ~470 SQL queries
# (~1 s of CPU); with it ~30 ms. Single process, so invalidation is exact.
enabled = true
backend = dogpile.cache.memory

[oslo_concurrency]
lock_path = $DIR/lock
EOF

# ---------------------------------------------------------------- 3+5a. keystone-manage and server
# Start-up time is dominated by Python imports (~2 s of CPU per keystone
# interpreter on this 2-core machine), so:
#  * the server process starts right away and imports keystone while the
#    setup runs; it only builds the app and binds the port once
#    DIR/.setup-ready exists (schema + key repositories in place);
#  * the four keystone-manage sub-commands run in ONE interpreter through
#    keystone.cmd.cli.main, the exact function /usr/bin/keystone-manage calls.
#    KEYSTONE_SEPARATE_MANAGE=1 runs the keystone-manage binary four times
#    instead (about 6 s slower).
KUSER=$(id -un)
KGROUP=$(id -gn)
cd "$DIR"

cat >"$DIR/keystone-server.py" <<'EOF'
# Threaded wsgiref server around keystone's public WSGI application.
#
# Keystone on sqlite is NOT safe with concurrent requests:
#  * sqlite allows one writer, and oslo.db opens every session with its own
#    BEGIN, so two requests that read then write deadlock and one gets
#    "database is locked" (HTTP 500), even on token validation;
#  * some request paths leave an SQLAlchemy connection in a reference cycle
#    with its transaction (and lock) open until the garbage collector runs,
#    possibly in another thread, where sqlite3 refuses to roll it back
#    (check_same_thread): the lock then stays and every later write fails.
# So connections are accepted by threads, but the application itself runs
# under one global lock, followed by a garbage collection in the same thread,
# and the database URL carries check_same_thread=false as a second line of
# defence. 4 concurrent clients without this got ~30% HTTP 500s; with it none.
import gc, os, sys, threading, time
conf, host, port, access_log, ready, timeout = sys.argv[1:7]
port, timeout = int(port), float(timeout)
os.environ["OS_KEYSTONE_CONFIG_FILES"] = conf
os.environ.pop("OS_KEYSTONE_CONFIG_DIR", None)
sys.argv = sys.argv[:1]  # oslo.config parses sys.argv[1:]
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, WSGIRequestHandler, make_server
from keystone.server.wsgi import initialize_public_application  # the slow part

deadline = time.time() + timeout
while not os.path.exists(ready):
    if time.time() > deadline:
        sys.exit("setup did not finish within %ss" % timeout)
    time.sleep(0.05)

access = open(access_log, "a", buffering=1)

class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

class Handler(WSGIRequestHandler):
    def address_string(self):
        return self.client_address[0]
    def log_message(self, fmt, *args):
        access.write("%s %s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"),
                                       self.client_address[0], fmt % args))

keystone_app = initialize_public_application()
app_lock = threading.Lock()
# Move everything alive now out of the collector's sight, and collect by hand:
# with automatic collection off, everything a request allocates stays in
# generation 0, so a gen-0 collection right after it (~1 ms) frees that
# request's cycles, leaked connections included. A full collection every
# FULL_GC_EVERY requests reclaims older garbage.
gc.collect()
gc.freeze()
gc.disable()
FULL_GC_EVERY = 100
GC_LOG = os.environ.get("KEYSTONE_GC_LOG")
served = 0

def app(environ, start_response):
    global served
    with app_lock:
        try:
            result = keystone_app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
                result = None
        finally:
            served += 1
            gen = 2 if served % FULL_GC_EVERY == 0 else 0
            t = time.perf_counter()
            n = gc.collect(gen)
            if GC_LOG:
                print("gc gen%d %d objects %.1f ms" % (gen, n, 1000 * (time.perf_counter() - t)), flush=True)
    return [body]

srv = make_server(host, port, app, server_class=Server, handler_class=Handler)
print("keystone listening on http://%s:%d/v3" % (host, port), flush=True)
srv.serve_forever()
EOF

cat >"$DIR/keystone-setup.py" <<'EOF'
# Runs keystone-manage sub-commands in one interpreter (same code path as the
# keystone-manage binary: keystone.cmd.cli.main). Usage:
#   keystone-setup.py CONF READY_FILE -- cmd args... -- cmd args... [-- READY] ...
# A literal "READY" command creates READY_FILE.
import sys
conf, ready = sys.argv[1], sys.argv[2]
cmds, cur = [], None
for a in sys.argv[3:]:
    if a == "--":
        cur = []
        cmds.append(cur)
    else:
        cur.append(a)
from keystone.cmd import cli
import keystone.conf
CONF = keystone.conf.CONF
for c in cmds:
    if c == ["READY"]:
        open(ready, "w").close()
        continue
    CONF.clear()  # forget the previous sub-command's parsed arguments
    print("keystone-manage", " ".join(c), flush=True)
    cli.main(argv=["keystone-manage", "--config-file", conf] + c)
EOF

setsid "$PY" "$DIR/keystone-server.py" "$DIR/keystone.conf" 127.0.0.1 "$PORT" \
  "$DIR/access.log" "$DIR/.setup-ready" "$START_TIMEOUT" \
  >"$DIR/server.log" 2>&1 </dev/null &
PID=$!
echo "$PID" >"$DIR/keystone.pid"
fail() { kill "$PID" 2>/dev/null || true; die "$@"; }
# Don't leave a half-started server behind if this script dies or is stopped.
trap 'kill "$PID" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM

FERNET=(fernet_setup --keystone-user "$KUSER" --keystone-group "$KGROUP")
CRED=(credential_setup --keystone-user "$KUSER" --keystone-group "$KGROUP")
BOOT=(bootstrap
  --bootstrap-username admin --bootstrap-password secret
  --bootstrap-project-name admin --bootstrap-role-name admin
  --bootstrap-region-id RegionOne
  --bootstrap-admin-url "$URL" --bootstrap-public-url "$URL" --bootstrap-internal-url "$URL")
if [ "${KEYSTONE_SEPARATE_MANAGE:-0}" = 1 ]; then
  for c in db_sync FERNET CRED READY BOOT; do
    case $c in
      db_sync) args=(db_sync) ;;
      FERNET) args=("${FERNET[@]}") ;;
      CRED) args=("${CRED[@]}") ;;
      BOOT) args=("${BOOT[@]}") ;;
      READY) : >"$DIR/.setup-ready"; continue ;;
    esac
    keystone-manage --config-file "$DIR/keystone.conf" "${args[@]}" >>"$DIR/manage.log" 2>&1 \
      || { tail -30 "$DIR/manage.log" >&2; fail "keystone-manage ${args[0]} failed (see $DIR/manage.log)"; }
  done
else
  "$PY" "$DIR/keystone-setup.py" "$DIR/keystone.conf" "$DIR/.setup-ready" \
    -- db_sync -- "${FERNET[@]}" -- "${CRED[@]}" -- READY -- "${BOOT[@]}" >"$DIR/manage.log" 2>&1 \
    || { tail -30 "$DIR/manage.log" >&2; fail "keystone-manage setup failed (see $DIR/manage.log)"; }
fi

# ---------------------------------------------------------------- 4+5b. wait, then create demo
if ! "$PY" - "$URL" "$START_TIMEOUT" "$PID" >"$DIR/ids.env" 2>"$DIR/setup.log" <<'EOF'
import json, os, sys, time, urllib.request, urllib.error

url, timeout, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

def call(method, path, body=None, token=None, ok=(200, 201, 204)):
    req = urllib.request.Request(url + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with opener.open(req, timeout=30) as r:
            data = r.read()
            return r.status, r.headers, (json.loads(data) if data else None)
    except urllib.error.HTTPError as e:
        data = e.read()
        if e.code in ok:
            return e.code, e.headers, (json.loads(data) if data else None)
        raise SystemExit("%s %s -> %d %s" % (method, path, e.code, data[:500]))

deadline = time.time() + timeout
while True:
    try:
        os.kill(pid, 0)
    except OSError:
        raise SystemExit("keystone server process %d exited" % pid)
    try:
        with opener.open(url, timeout=2) as r:
            if r.status == 200:
                break
    except Exception:
        pass
    if time.time() > deadline:
        raise SystemExit("keystone did not answer GET %s within %ss" % (url, timeout))
    time.sleep(0.1)

def auth(user, project):
    _, h, body = call("POST", "/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": "secret"}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}})
    return h["X-Subject-Token"], body["token"]

admin_tok, admin = auth("admin", "admin")
_, _, p = call("POST", "/projects", {"project": {"name": "demo", "domain_id": "default",
               "description": "demo project for tests", "enabled": True}}, admin_tok)
demo_project = p["project"]["id"]
_, _, u = call("POST", "/users", {"user": {"name": "demo", "domain_id": "default",
               "password": "secret", "enabled": True, "default_project_id": demo_project}}, admin_tok)
demo_user = u["user"]["id"]
_, _, roles = call("GET", "/roles?name=member", None, admin_tok)
if not roles["roles"]:
    raise SystemExit("role 'member' not found")
member = roles["roles"][0]["id"]
call("PUT", "/projects/%s/users/%s/roles/%s" % (demo_project, demo_user, member), None, admin_tok)
auth("demo", "demo")  # sanity check: demo can get a project-scoped token

print("KEYSTONE_URL=%s" % url)
print("KEYSTONE_ADMIN_PROJECT_ID=%s" % admin["project"]["id"])
print("KEYSTONE_DEMO_PROJECT_ID=%s" % demo_project)
print("KEYSTONE_ADMIN_USER_ID=%s" % admin["user"]["id"])
print("KEYSTONE_DEMO_USER_ID=%s" % demo_user)
EOF
then
  cat "$DIR/setup.log" >&2
  tail -20 "$DIR/server.log" >&2 || true
  fail "keystone did not come up (logs in $DIR)"
fi

trap - EXIT INT TERM
cat "$DIR/ids.env"
echo "KEYSTONE_PID=$PID"
