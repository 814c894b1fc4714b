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
#   access.log (one line per HTTP request), manage-*.log (keystone-manage output).
#
# Stop it with: kill "$(cat DIR/keystone.pid)"
#
# Environment knobs (optional):
#   KEYSTONE_TOKEN_EXPIRATION  token lifetime in seconds (default 3600)
#   KEYSTONE_START_TIMEOUT     seconds to wait for the API to answer (default 60)
#   KEYSTONE_DEBUG=1           debug logging in DIR/keystone.log
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
  if ! apt-get install -y -qq --no-install-recommends python3-keystone >"$DIR/apt.log" 2>&1; then
    apt-get update -qq >>"$DIR/apt.log" 2>&1 || true
    apt-get install -y -qq --no-install-recommends python3-keystone >>"$DIR/apt.log" 2>&1 \
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
connection = sqlite:///$DIR/keystone.db

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
enabled = false

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
import os, sys, time
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

app = initialize_public_application()
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

cat "$DIR/ids.env"
echo "KEYSTONE_PID=$PID"
