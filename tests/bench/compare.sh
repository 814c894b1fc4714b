#!/usr/bin/env bash
# Side-by-side benchmark of Herald, the real OpenStack Zaqar, NATS JetStream
# and the loopback HTTP ceiling, on this machine, in one run.
#
# It builds herald and tests/bench/ceiling into a temporary directory,
# installs what is missing (Zaqar + Redis through the peer script, which runs
# its own apt-get update; nats-server with apt-get, after one apt-get update
# only when the peer script did not just run one), starts
#   Herald   herald serve on a fresh data dir        127.0.0.1:$HERALD_PORT
#   Zaqar    start-zaqar.sh (REST + WebSocket)        127.0.0.1:$ZAQAR_PORT, ws :$ZAQAR_WS_PORT
#   NATS     nats-server -js, file storage in a temp dir  127.0.0.1:$NATS_PORT
#   ceiling  tests/bench/ceiling                      127.0.0.1:$CEILING_PORT
# waits for each to answer, runs the same workloads against each system
# RUNS times with `herald bench --json`, and prints one Markdown table per
# workload (medians over the runs, ratios to Herald) on stdout and to $OUT.
# Everything it started is stopped on exit, including failure and Ctrl-C.
#
# Usage:  tests/bench/compare.sh            (full run, about 18-20 minutes)
#         QUICK=1 tests/bench/compare.sh    (smoke test: DURATION=2s RUNS=1)
#
# Environment (all optional):
#   DURATION=10s WARMUP=2s RUNS=3   measured window, warm-up, runs per figure
#                                   (durations: N, Ns, Nms or Nm)
#   QUICK=1                         DURATION=2s RUNS=1 unless set explicitly
#   OUT=./bench-results.md          where the report is written (also stdout)
#   WORKLOADS="post1 post10 consume mixed ws"    subset to run
#   SYSTEMS="herald zaqar jetstream ceiling"     subset (herald always runs)
#   POST_WORKERS="16 64"            producer counts of the post workloads
#   CONSUMERS=16                    consumers of the claim+delete workload
#   PREFILL_PRODUCERS=16            producers (10 msgs/request) filling its queue,
#   PREFILL=<(WARMUP+DURATION)/2>   for this long (a queue that runs dry is flagged)
#   MIXED=8/8/4                     producers/consumers/observers of the mix
#   WS_PRODUCERS=16 WS_PIPELINE=16  WebSocket connections and frames in flight
#   BODY_SIZE=256 REQ_TIMEOUT=10s   bench --body-size and --timeout
#   HERALD_PORT=28801 HERALD_WS_PORT=28802 CEILING_PORT=28803 NATS_PORT=28808
#   ZAQAR_PORT=28804 ZAQAR_WS_PORT=28805 ZAQAR_WS_NOTIFY_PORT=28806 REDIS_PORT=28807
#   HERALD_WS_URL                   WebSocket URL to try for Herald (default:
#                                   its --ws-… listener when `herald serve`
#                                   has one, else ws://127.0.0.1:$HERALD_PORT)
#   PEER_ZAQAR_DIR=/work/shared/peer-zaqar
#   KEEP_WORK=1                     keep the temp dir (logs, raw JSON) on success
#   (other ZAQAR_* knobs of start-zaqar.sh pass through, e.g. ZAQAR_MGMT_STORE)
#
# Exit status: 0 when every system started and every bench run measured
# something; 1 when a system failed to start or a bench run failed outright
# (the report is still written in the latter case, with FAILED rows);
# 2 on a usage error. A system that is not available (Herald over WebSocket
# today) is shown as n/a with the reason and does not fail the run.
set -uo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/../.." && pwd)"
PEER_ZAQAR_DIR="${PEER_ZAQAR_DIR:-/work/shared/peer-zaqar}"
REPORT_PY="$SCRIPT_DIR/compare_report.py"

log() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage_die() { log "usage: $*"; exit 2; }

# ------------------------------------------------------------------ settings
QUICK="${QUICK:-0}"
if [ "$QUICK" = 1 ]; then
  DURATION="${DURATION:-2s}"
  RUNS="${RUNS:-1}"
fi
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
RUNS="${RUNS:-3}"
OUT="${OUT:-./bench-results.md}"
WORKLOADS="${WORKLOADS:-post1 post10 consume mixed ws}"
SYSTEMS="${SYSTEMS:-herald zaqar jetstream ceiling}"
POST_WORKERS="${POST_WORKERS:-16 64}"
CONSUMERS="${CONSUMERS:-16}"
PREFILL_PRODUCERS="${PREFILL_PRODUCERS:-16}"
PREFILL="${PREFILL:-}"
MIXED="${MIXED:-8/8/4}"
WS_PRODUCERS="${WS_PRODUCERS:-16}"
WS_PIPELINE="${WS_PIPELINE:-16}"
BODY_SIZE="${BODY_SIZE:-256}"
REQ_TIMEOUT="${REQ_TIMEOUT:-10s}"
HERALD_PORT="${HERALD_PORT:-28801}"
HERALD_WS_PORT="${HERALD_WS_PORT:-28802}"
CEILING_PORT="${CEILING_PORT:-28803}"
ZAQAR_PORT="${ZAQAR_PORT:-28804}"
ZAQAR_WS_PORT="${ZAQAR_WS_PORT:-28805}"
ZAQAR_WS_NOTIFY_PORT="${ZAQAR_WS_NOTIFY_PORT:-28806}"
REDIS_PORT="${REDIS_PORT:-28807}"
NATS_PORT="${NATS_PORT:-28808}"
KEEP_WORK="${KEEP_WORK:-0}"

dur_ms() {  # dur_ms 10s -> 10000 (N, Ns, Nms, Nm; decimals allowed)
  awk -v d="$1" 'BEGIN {
    if (d ~ /^[0-9]+(\.[0-9]+)?ms$/) { print int(substr(d, 1, length(d)-2)); exit }
    if (d ~ /^[0-9]+(\.[0-9]+)?s$/)  { print int(substr(d, 1, length(d)-1) * 1000); exit }
    if (d ~ /^[0-9]+(\.[0-9]+)?m$/)  { print int(substr(d, 1, length(d)-1) * 60000); exit }
    if (d ~ /^[0-9]+(\.[0-9]+)?$/)   { print int(d * 1000); exit }
    exit 1 }'
}
ms_str() { if [ $(($1 % 1000)) = 0 ]; then echo "$(($1 / 1000))s"; else echo "${1}ms"; fi; }
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

DURATION_MS="$(dur_ms "$DURATION")" && [ "$DURATION_MS" -gt 0 ] || usage_die "DURATION=$DURATION: want N, Ns, Nms or Nm > 0"
WARMUP_MS="$(dur_ms "$WARMUP")" || usage_die "WARMUP=$WARMUP: want N, Ns, Nms or Nm"
REQ_TIMEOUT_MS="$(dur_ms "$REQ_TIMEOUT")" && [ "$REQ_TIMEOUT_MS" -gt 0 ] || usage_die "REQ_TIMEOUT=$REQ_TIMEOUT"
if [ -n "$PREFILL" ]; then
  PREFILL_MS="$(dur_ms "$PREFILL")" && [ "$PREFILL_MS" -gt 0 ] || usage_die "PREFILL=$PREFILL"
else
  PREFILL_MS=$(( (WARMUP_MS + DURATION_MS) / 2 ))
  [ "$PREFILL_MS" -ge 2000 ] || PREFILL_MS=2000
fi
for v in RUNS CONSUMERS PREFILL_PRODUCERS WS_PRODUCERS WS_PIPELINE BODY_SIZE HERALD_PORT HERALD_WS_PORT \
         CEILING_PORT ZAQAR_PORT ZAQAR_WS_PORT ZAQAR_WS_NOTIFY_PORT REDIS_PORT NATS_PORT; do
  is_uint "${!v}" || usage_die "$v=${!v} is not a number"
done
[ "$RUNS" -ge 1 ] || usage_die "RUNS must be at least 1"
for n in $POST_WORKERS; do is_uint "$n" && [ "$n" -ge 1 ] || usage_die "POST_WORKERS=$POST_WORKERS"; done
IFS=/ read -r MIX_P MIX_C MIX_O <<<"$MIXED"
for n in "${MIX_P:-}" "${MIX_C:-}" "${MIX_O:-}"; do is_uint "$n" || usage_die "MIXED=$MIXED: want P/C/O"; done
for w in $WORKLOADS; do
  case "$w" in post1|post10|consume|mixed|ws) ;; *) usage_die "WORKLOADS: unknown $w (post1 post10 consume mixed ws)";; esac
done
for s in $SYSTEMS; do
  case "$s" in herald|zaqar|jetstream|ceiling) ;; *) usage_die "SYSTEMS: unknown $s (herald zaqar jetstream ceiling)";; esac
done
want_wl() { [[ " $WORKLOADS " == *" $1 "* ]]; }
want_sys() { [ "$1" = herald ] || [[ " $SYSTEMS " == *" $1 "* ]]; }
ALL_PORTS="HERALD_PORT HERALD_WS_PORT CEILING_PORT ZAQAR_PORT ZAQAR_WS_PORT ZAQAR_WS_NOTIFY_PORT REDIS_PORT NATS_PORT"
seen_ports=" "
for v in $ALL_PORTS; do
  [[ "$seen_ports" == *" ${!v} "* ]] && usage_die "$v=${!v} is used twice"
  seen_ports+="${!v} "
done

case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY="$(command -v python3)" || die "python3 is needed"; fi
command -v go >/dev/null || die "go is needed"
command -v curl >/dev/null || die "curl is needed"
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi

# ------------------------------------------------------------------ state, lock, leftovers
STATE_DIR="${TMPDIR:-/tmp}/herald-compare-$(id -u)"
mkdir -p "$STATE_DIR" || die "cannot create $STATE_DIR"
exec 9>"$STATE_DIR/lock"
flock -n 9 || die "another compare.sh is running (lock $STATE_DIR/lock)"
PIDFILE="$STATE_DIR/pids"          # pid <TAB> work dir <TAB> name, of what we started
ZAQAR_STATE="$STATE_DIR/zaqar-peer.env"

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
owned_by() {  # owned_by PID WORKDIR: alive and started from WORKDIR (its command line names it)
  alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}
stop_pid() {  # stop_pid PID WORKDIR NAME
  local pid=$1 work=$2 name=$3 i
  owned_by "$pid" "$work" || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then kill -KILL "$pid" 2>/dev/null; log "killed $name (pid $pid)"; fi
  wait "$pid" 2>/dev/null
  return 0
}
stop_zaqar() {
  [ -f "$ZAQAR_STATE" ] || return 0
  ZAQAR_PEER_STATE="$ZAQAR_STATE" timeout -k 5 60 "$PEER_ZAQAR_DIR/stop-zaqar.sh" >/dev/null 2>&1 9>&- \
    || log "stop-zaqar.sh failed (state $ZAQAR_STATE)"
}

if [ -s "$PIDFILE" ]; then
  log "stopping leftovers of an earlier run ($PIDFILE)"
  while IFS=$'\t' read -r pid work name; do stop_pid "$pid" "$work" "$name"; done <"$PIDFILE"
fi
: >"$PIDFILE"
stop_zaqar

WORK="$(mktemp -d "${TMPDIR:-/tmp}/herald-compare.XXXXXX")" || die "mktemp failed"
BIN="$WORK/bin"; LOGS="$WORK/logs"; RES="$WORK/results"
mkdir -p "$BIN" "$LOGS" "$RES"
: >"$RES/workloads.tsv"; : >"$RES/runs.tsv"; : >"$RES/na.tsv"; : >"$RES/cmds.tsv"

STARTED=()      # "pid name" of our servers, in start order
BENCH_PID=""
ZAQAR_STARTED=0
FAILED=0        # a bench run failed outright
finished=0

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM HUP
  if [ -n "$BENCH_PID" ] && alive "$BENCH_PID"; then
    kill -TERM "$BENCH_PID" 2>/dev/null; wait "$BENCH_PID" 2>/dev/null
  fi
  if [ "${#STARTED[@]}" -gt 0 ] || [ "$ZAQAR_STARTED" = 1 ]; then log "stopping what was started"; fi
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    stop_pid "${STARTED[$i]%% *}" "$WORK" "${STARTED[$i]#* }"
  done
  [ "$ZAQAR_STARTED" = 1 ] && stop_zaqar
  : >"$PIDFILE"
  if [ "$rc" = 0 ] && [ "$KEEP_WORK" != 1 ]; then
    rm -rf "$WORK"
  else
    log "logs and raw results kept in $WORK"
  fi
  [ "$finished" = 1 ] || [ "$rc" != 0 ] || rc=1
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM HUP

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

show_tail() {  # show_tail FILE...: last lines of logs, for a failure
  local f
  for f in "$@"; do
    [ -s "$f" ] && { echo "----- $f (tail)" >&2; tail -n 20 "$f" >&2; }
  done
  return 0
}

start_bg() {  # start_bg NAME LOGFILE CMD...: own session, recorded for cleanup
  local name=$1 logf=$2; shift 2
  setsid "$@" >"$logf" 2>&1 </dev/null 9>&- &
  local pid=$!
  STARTED+=("$pid $name")
  printf '%s\t%s\t%s\n' "$pid" "$WORK" "$name" >>"$PIDFILE"
  LAST_PID=$pid
}

wait_for() {  # wait_for DESC SECONDS PID LOGFILE CHECK...: until CHECK succeeds, PID lives
  local desc=$1 secs=$2 pid=$3 logf=$4; shift 4
  local deadline=$((SECONDS + secs))
  while :; do
    if [ -n "$pid" ] && ! alive "$pid"; then show_tail "$logf"; die "$desc exited during start-up"; fi
    "$@" && return 0
    [ "$SECONDS" -ge "$deadline" ] && { show_tail "$logf"; die "$desc did not answer within ${secs}s"; }
    sleep 0.2
  done
}

ping_ok() {  # ping_ok ROOT_URL: GET /v2/ping answers 2xx
  curl -fsS -m 2 -o /dev/null -H 'Client-ID: 3381af92-2b9e-11e3-b191-71861300734c' \
    -H 'X-Project-ID: compare-ping' "$1/v2/ping" 2>/dev/null
}
nats_ready() { port_open "$NATS_PORT" && grep -q "Server is ready" "$LOGS/nats.log" 2>/dev/null; }

pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "not installed"; }
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# ------------------------------------------------------------------ ports free?
check_port() {  # check_port VAR
  port_open "${!1}" && die "port ${!1} ($1) on 127.0.0.1 is already in use; set $1 to a free port"
  return 0
}
check_port HERALD_PORT
want_sys ceiling && check_port CEILING_PORT
want_sys jetstream && check_port NATS_PORT
if want_sys zaqar; then for v in ZAQAR_PORT ZAQAR_WS_PORT ZAQAR_WS_NOTIFY_PORT REDIS_PORT; do check_port "$v"; done; fi

# ------------------------------------------------------------------ build
cd "$REPO" || die "cannot cd to $REPO"
log "building herald and the ceiling into $BIN"
timeout -k 10 900 go build -o "$BIN/herald" ./cmd/herald >"$LOGS/build.log" 2>&1 9>&- \
  || { show_tail "$LOGS/build.log"; die "go build ./cmd/herald failed"; }
timeout -k 10 600 go build -o "$BIN/ceiling" ./tests/bench/ceiling >>"$LOGS/build.log" 2>&1 9>&- \
  || { show_tail "$LOGS/build.log"; die "go build ./tests/bench/ceiling failed"; }
HERALD_COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ] && HERALD_COMMIT+=" (with uncommitted changes)"

# ------------------------------------------------------------------ Zaqar (installs itself when missing)
APT_UPDATED=0
ZAQAR_START_CMD=""
if want_sys zaqar; then
  [ -x "$PEER_ZAQAR_DIR/start-zaqar.sh" ] || die "$PEER_ZAQAR_DIR/start-zaqar.sh not found (set PEER_ZAQAR_DIR)"
  zaqar_timeout=180
  for p in zaqar-server python3-zaqar redis-server redis-tools python3-redis python3-websocket; do
    if ! pkg_installed "$p"; then
      zaqar_timeout=1800; APT_UPDATED=1
      log "Zaqar packages missing: start-zaqar.sh installs them (apt-get update + install, a few minutes)"
      break
    fi
  done
  ZAQAR_START_CMD="ZAQAR_PORT=$ZAQAR_PORT ZAQAR_WS_PORT=$ZAQAR_WS_PORT ZAQAR_WS_NOTIFY_PORT=$ZAQAR_WS_NOTIFY_PORT REDIS_PORT=$REDIS_PORT ZAQAR_NO_WS=0 ZAQAR_PEER_STATE=$ZAQAR_STATE $PEER_ZAQAR_DIR/start-zaqar.sh"
  log "starting Zaqar (REST :$ZAQAR_PORT, WebSocket :$ZAQAR_WS_PORT, Redis :$REDIS_PORT)"
  ZAQAR_STARTED=1
  env TMPDIR="$WORK" ZAQAR_PEER_STATE="$ZAQAR_STATE" ZAQAR_PORT="$ZAQAR_PORT" ZAQAR_WS_PORT="$ZAQAR_WS_PORT" \
      ZAQAR_WS_NOTIFY_PORT="$ZAQAR_WS_NOTIFY_PORT" REDIS_PORT="$REDIS_PORT" ZAQAR_NO_WS=0 \
      timeout -k 10 "$zaqar_timeout" "$PEER_ZAQAR_DIR/start-zaqar.sh" >"$LOGS/start-zaqar.out" 2>"$LOGS/start-zaqar.err" </dev/null 9>&- \
    || { show_tail "$LOGS/start-zaqar.err" "$LOGS/start-zaqar.out"; die "start-zaqar.sh failed (see above)"; }
  wait_for "Zaqar REST" 30 "" "$LOGS/start-zaqar.err" ping_ok "http://127.0.0.1:$ZAQAR_PORT"
  wait_for "Zaqar WebSocket" 30 "" "$LOGS/start-zaqar.err" port_open "$ZAQAR_WS_PORT"
fi

# ------------------------------------------------------------------ NATS JetStream
NATS_START_CMD=""
if want_sys jetstream; then
  if ! command -v nats-server >/dev/null; then
    log "installing nats-server (apt)"
    if [ "$APT_UPDATED" = 0 ]; then
      timeout -k 10 600 $SUDO apt-get update -qq >"$LOGS/apt.log" 2>&1 9>&- || { show_tail "$LOGS/apt.log"; die "apt-get update failed"; }
      APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive timeout -k 10 900 $SUDO apt-get install -y -q nats-server >>"$LOGS/apt.log" 2>&1 9>&- \
      || { show_tail "$LOGS/apt.log"; die "apt-get install nats-server failed"; }
  fi
  NATS_BIN="$(command -v nats-server)" || die "nats-server not found after install"
  mkdir -p "$WORK/nats"
  NATS_START_CMD="nats-server -js -sd $WORK/nats -a 127.0.0.1 -p $NATS_PORT"
  log "starting nats-server -js on :$NATS_PORT"
  start_bg nats-server "$LOGS/nats.log" "$NATS_BIN" -js -sd "$WORK/nats" -a 127.0.0.1 -p "$NATS_PORT"
  wait_for nats-server 30 "$LAST_PID" "$LOGS/nats.log" nats_ready
fi

# ------------------------------------------------------------------ Herald
HERALD_WS_FLAG="$("$BIN/herald" serve --help 2>&1 | grep -oE -- '--(ws|websocket)[a-z-]*listen[a-z-]*' | head -n1 || true)"
herald_args=(serve --data "$WORK/herald-data" --listen "127.0.0.1:$HERALD_PORT" --shutdown-timeout 5s)
if [ -n "$HERALD_WS_FLAG" ]; then
  check_port HERALD_WS_PORT
  herald_args+=("$HERALD_WS_FLAG" "127.0.0.1:$HERALD_WS_PORT")
  HERALD_WS_URL="${HERALD_WS_URL:-ws://127.0.0.1:$HERALD_WS_PORT}"
else
  HERALD_WS_URL="${HERALD_WS_URL:-ws://127.0.0.1:$HERALD_PORT}"
fi
HERALD_START_CMD="herald ${herald_args[*]}"
# herald serve reads HERALD_* settings from the environment: give it none
unset_herald=()
for v in $(compgen -e | grep '^HERALD_' || true); do unset_herald+=(-u "$v"); done
log "starting herald serve on :$HERALD_PORT (embedded log, fresh data dir)"
start_bg herald "$LOGS/herald.log" env "${unset_herald[@]}" "$BIN/herald" "${herald_args[@]}"
wait_for herald 60 "$LAST_PID" "$LOGS/herald.log" ping_ok "http://127.0.0.1:$HERALD_PORT"

# ------------------------------------------------------------------ ceiling
CEILING_START_CMD=""
if want_sys ceiling; then
  CEILING_START_CMD="ceiling --listen 127.0.0.1:$CEILING_PORT"
  log "starting the HTTP ceiling on :$CEILING_PORT"
  start_bg ceiling "$LOGS/ceiling.log" "$BIN/ceiling" --listen "127.0.0.1:$CEILING_PORT"
  wait_for ceiling 15 "$LAST_PID" "$LOGS/ceiling.log" port_open "$CEILING_PORT"
fi

# ------------------------------------------------------------------ bench runs
HERALD_URL="http://127.0.0.1:$HERALD_PORT"
ZAQAR_URL="http://127.0.0.1:$ZAQAR_PORT"
ZAQAR_WS_URL="ws://127.0.0.1:$ZAQAR_WS_PORT"
NATS_URL="nats://127.0.0.1:$NATS_PORT"
CEILING_URL="http://127.0.0.1:$CEILING_PORT"
COMMON=(--json --body-size "$BODY_SIZE" --timeout "$REQ_TIMEOUT")
MEASURE=(--duration "$DURATION" --warmup "$WARMUP")
BENCH_TIMEOUT_S=$(( (WARMUP_MS + DURATION_MS + 2 * REQ_TIMEOUT_MS) / 1000 + 60 ))

tsv() { local IFS=$'\t'; printf '%s\n' "$*"; }
one_line() { tr '\t\n' '  ' <<<"$1"; }
declare -A CMD_SEEN
note_cmd() {  # note_cmd WL SYS LABEL COMMAND: the first command of each (wl, label), for the report
  [ -n "${CMD_SEEN["$1|$3"]:-}" ] && return 0
  CMD_SEEN["$1|$3"]=1
  tsv "$1" "$2" "$3" "$4" >>"$RES/cmds.tsv"
}
rand_hex() { od -An -N4 -tx1 /dev/urandom | tr -d ' \n'; }

# bench RESULTFILE CMDLOG_WL CMDLOG_SYS CMDLOG_LABEL ARGS...: one herald bench run.
# Sets BENCH_RC, BENCH_STATUS (ok|fail), BENCH_SUMMARY, BENCH_REASON.
bench() {
  local out=$1 wl=$2 sys=$3 label=$4; shift 4
  local cmd=(bench "${COMMON[@]}" "$@")
  [ -n "$wl" ] && note_cmd "$wl" "$sys" "$label" "herald ${cmd[*]}"
  timeout -k 5 "$BENCH_TIMEOUT_S" "$BIN/herald" "${cmd[@]}" >"$out" 2>"${out%.json}.err" </dev/null 9>&- &
  BENCH_PID=$!
  BENCH_RC=0
  wait "$BENCH_PID" || BENCH_RC=$?
  BENCH_PID=""
  local line
  line="$("$PY" "$REPORT_PY" check "$out" "${out%.json}.err" "$BENCH_RC" 2>&1)" || line=$'fail\t-\tcompare_report.py check failed: '"$(one_line "$line")"
  IFS=$'\t' read -r BENCH_STATUS BENCH_SUMMARY BENCH_REASON <<<"$line"
}

STEP=0
TOTAL=0
record() {  # record WL SYS LABEL RUN OUTFILE: after bench
  tsv "$1" "$2" "$3" "$4" "$BENCH_STATUS" "$5" "$(one_line "${BENCH_REASON:-}")" >>"$RES/runs.tsv"
  if [ "$BENCH_STATUS" = ok ]; then
    log "($STEP/$TOTAL) $1 $3 run $4/$RUNS: $BENCH_SUMMARY"
  else
    FAILED=1
    log "($STEP/$TOTAL) $1 $3 run $4/$RUNS: FAILED (exit $BENCH_RC): $BENCH_REASON"
    show_tail "${5%.json}.err"
  fi
}

target_args() {  # target_args SYS: sets TARGET
  case "$1" in
    herald) TARGET=(--target rest --url "$HERALD_URL") ;;
    zaqar) TARGET=(--target rest --url "$ZAQAR_URL") ;;
    jetstream) TARGET=(--target nats --nats-url "$NATS_URL") ;;
    ceiling) TARGET=(--target rest --url "$CEILING_URL") ;;
  esac
}

# Workload definitions. For each: id, title, verify mode, note; the systems;
# and wl_args WL SYS, which sets ARGS and LABEL for one run.
declare -A WL_TITLE WL_VERIFY WL_NOTE WL_SYSTEMS
WL_ORDER=()
add_wl() { WL_ORDER+=("$1"); WL_TITLE[$1]=$2; WL_VERIFY[$1]=$3; WL_NOTE[$1]=$4; WL_SYSTEMS[$1]=$5; }

if want_wl post1; then
  for n in $POST_WORKERS; do
    add_wl "post1-w$n" "REST post, 1 message/request, $n producers" off \
      "Producers only, each with its own keep-alive connection; JetStream: synchronous publish waiting for the PubAck; ceiling: tests/bench/ceiling (net/http answering posts, nothing stored). --verify=false for all (nothing is consumed)." \
      "herald zaqar jetstream ceiling"
  done
fi
if want_wl post10; then
  for n in $POST_WORKERS; do
    add_wl "post10-w$n" "REST post, 10 messages/request, $n producers" off \
      "Producers only; msgs/s counts messages, req/s requests. JetStream: 10 async publishes then waiting for every PubAck (its durable batch, not atomic). --verify=false for all." \
      "herald zaqar jetstream ceiling"
  done
fi
if want_wl consume; then
  add_wl consume "Claim + delete, $CONSUMERS consumers (claim limit 10, one delete per message)" dups \
    "Each run first **pre-fills** the queue with a separate producer-only bench run ($PREFILL_PRODUCERS producers × 10 messages/request for $(ms_str "$PREFILL_MS")), then measures **consumers only** (no producer competing for the CPU) on that queue with --setup=false. delete msgs/s is the consumer rate. Verification can only check duplicates (the tokens come from the filling run); a queue that ran dry is flagged. JetStream: shared durable pull consumer, no-wait Fetch + AckSync per message." \
    "herald zaqar jetstream"
fi
if want_wl mixed; then
  add_wl mixed "Mixed: $MIX_P producers / $MIX_C consumers / $MIX_O observers together" full \
    "All roles at once on one queue, full verification (no duplicates, nothing unknown). JetStream: $MIX_P producers / $MIX_C consumers, no observers (unsupported)." \
    "herald zaqar jetstream"
fi
if want_wl ws; then
  add_wl ws "WebSocket post, 1 message/frame, $WS_PRODUCERS connections × $WS_PIPELINE frames in flight" off \
    "Producers only over Zaqar's v2 WebSocket API (message_post frames, --ws-pipeline $WS_PIPELINE). Reference: JetStream synchronous publish with $WS_PRODUCERS producers (one publish in flight each). Ratios are to Herald over WebSocket, so they are blank while Herald has no WebSocket listener." \
    "herald zaqar jetstream"
fi

wl_args() {  # wl_args WL SYS: sets ARGS, LABEL
  local wl=$1 sys=$2
  target_args "$sys"
  LABEL=$sys
  case "$wl" in
    post1-w*|post10-w*)
      local n=${wl##*-w} m=1
      [[ "$wl" == post10-* ]] && m=10
      ARGS=("${TARGET[@]}" --producers "$n" --consumers 0 --messages-per-request "$m" --verify=false "${MEASURE[@]}")
      [ "$sys" = ceiling ] || ARGS+=(--clean)
      ;;
    consume)
      ARGS=("${TARGET[@]}" --setup=false --producers 0 --consumers "$CONSUMERS" --claim-limit 10 --consumer-delete each "${MEASURE[@]}" --clean)
      ;;
    mixed)
      local o=$MIX_O
      [ "$sys" = jetstream ] && o=0
      ARGS=("${TARGET[@]}" --producers "$MIX_P" --consumers "$MIX_C" --observers "$o" "${MEASURE[@]}" --clean)
      ;;
    ws)
      case "$sys" in
        herald) ARGS=(--target ws --ws-url "$HERALD_WS_URL" --ws-pipeline "$WS_PIPELINE"); LABEL="herald (ws)" ;;
        zaqar) ARGS=(--target ws --ws-url "$ZAQAR_WS_URL" --ws-pipeline "$WS_PIPELINE"); LABEL="zaqar (ws)" ;;
        jetstream) ARGS=("${TARGET[@]}"); LABEL="jetstream (sync publish)" ;;
      esac
      ARGS+=(--producers "$WS_PRODUCERS" --consumers 0 --verify=false "${MEASURE[@]}" --clean)
      ;;
  esac
}

# Which (workload, system) pairs run; Herald over WebSocket is probed first.
HERALD_WS_NA=""
if want_wl ws; then
  log "probing Herald over WebSocket at $HERALD_WS_URL"
  bench "$RES/herald-ws-probe.json" "" "" "" --target ws --ws-url "$HERALD_WS_URL" --producers 1 --consumers 0 \
    --duration 1s --timeout 3s --verify=false --clean
  if [ "$BENCH_STATUS" != ok ]; then
    if [ -n "$HERALD_WS_FLAG" ]; then where="herald serve $HERALD_WS_FLAG 127.0.0.1:$HERALD_WS_PORT"
    else where="herald serve has no WebSocket listener flag (no --ws-…listen in serve --help)"; fi
    HERALD_WS_NA="no WebSocket endpoint: $where; a probe of $HERALD_WS_URL failed: $BENCH_REASON"
    log "Herald WebSocket unavailable: $BENCH_REASON"
  else
    log "Herald answers over WebSocket"
  fi
fi

PLAN=()   # "wl sys"
for wl in "${WL_ORDER[@]}"; do
  tsv "$wl" "${WL_TITLE[$wl]}" "${WL_VERIFY[$wl]}" "${WL_NOTE[$wl]}" >>"$RES/workloads.tsv"
  for sys in ${WL_SYSTEMS[$wl]}; do
    want_sys "$sys" || continue
    if [ "$wl" = ws ] && [ "$sys" = herald ] && [ -n "$HERALD_WS_NA" ]; then
      tsv ws herald "herald (ws)" "$(one_line "$HERALD_WS_NA")" >>"$RES/na.tsv"
      continue
    fi
    PLAN+=("$wl $sys")
  done
done
TOTAL=$(( ${#PLAN[@]} * RUNS ))
per_run_s=$(( (WARMUP_MS + DURATION_MS) / 1000 + 1 ))
n_prefill=$(printf '%s\n' "${PLAN[@]}" | grep -c '^consume ' || true)
n_zaqar=$(printf '%s\n' "${PLAN[@]}" | grep -c ' zaqar$' || true)
est_s=$(( RUNS * (${#PLAN[@]} * per_run_s + n_prefill * (PREFILL_MS / 1000 + 1) + n_zaqar * 5) ))
log "plan: $TOTAL bench runs of ~${per_run_s}s (+$((n_prefill * RUNS)) queue fills): about $(( est_s / 60 + 1 )) min"

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
T0=$SECONDS
for wl in "${WL_ORDER[@]}"; do
  for run in $(seq 1 "$RUNS"); do
    # interleave the systems run by run, so slow drift hits them alike
    for entry in "${PLAN[@]}"; do
      [ "${entry%% *}" = "$wl" ] || continue
      sys=${entry#* }
      STEP=$((STEP + 1))
      wl_args "$wl" "$sys"
      out="$RES/$wl.$sys.$run.json"
      if [ "$wl" = consume ]; then
        project="cmp-$(rand_hex)"
        fill_ms=$PREFILL_MS
        fill=("${TARGET[@]}" --project "$project" --producers "$PREFILL_PRODUCERS" --consumers 0 --messages-per-request 10
              --verify=false --duration "$(ms_str "$fill_ms")" --warmup 0s)
        note_cmd consume "$sys" "$LABEL: fill the queue" "herald bench ${COMMON[*]} ${fill[*]}"
        bench "$RES/$wl.$sys.$run.fill.json" "" "" "" "${fill[@]}"
        if [ "$BENCH_STATUS" != ok ]; then
          BENCH_REASON="filling the queue failed: $BENCH_REASON"
          record "$wl" "$sys" "$LABEL" "$run" "$RES/$wl.$sys.$run.fill.json"
          continue
        fi
        log "($STEP/$TOTAL) $wl $LABEL run $run/$RUNS: filled ($BENCH_SUMMARY)"
        ARGS+=(--project "$project")
      fi
      bench "$out" "$wl" "$sys" "$LABEL" "${ARGS[@]}"
      record "$wl" "$sys" "$LABEL" "$run" "$out"
    done
  done
done
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
ELAPSED=$((SECONDS - T0))

# ------------------------------------------------------------------ report
mem_gib="$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
{
  echo "# Herald vs Zaqar vs NATS JetStream vs HTTP ceiling"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), one machine, everything on loopback; \`tests/bench/compare.sh\`$([ "$QUICK" = 1 ] && echo " with QUICK=1 (smoke test: figures are indicative only)")."
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| CPU | ${cpu_model:-unknown} × $(nproc) (nproc) |"
  echo "| memory | $mem_gib |"
  echo "| kernel | $(uname -srm) |"
  echo "| Go | $(go version | sed 's/^go version //') |"
  echo "| herald | $HERALD_COMMIT (go build ./cmd/herald), embedded log |"
  want_sys zaqar && echo "| zaqar | zaqar-server $(pkg_version zaqar-server), python3-zaqar $(pkg_version python3-zaqar), redis-server $(pkg_version redis-server) (Debian; peer launcher $PEER_ZAQAR_DIR) |"
  want_sys jetstream && echo "| nats-server | $(pkg_version nats-server) ($("$NATS_BIN" --version 2>&1 | head -n1)) |"
  echo "| settings | RUNS=$RUNS (figures are medians) DURATION=$DURATION WARMUP=$WARMUP body $BODY_SIZE B, request timeout $REQ_TIMEOUT; $ELAPSED s of benchmarking |"
  echo "| load average | $LOAD_START at start, $LOAD_END at end (the bench client shares the CPUs with the server under test) |"
  echo
  if want_sys zaqar; then
    echo "Zaqar runs as the peer script starts it: \`zaqar-server\` serves REST with Python's single-threaded \`wsgiref\` server (HTTP/1.0, a new connection per request, listen backlog 5: under load some connections wait for SYN retries, hence its long max latencies and runs that end a few seconds late) and WebSocket from one asyncio process, on Redis; a production Zaqar would sit behind uWSGI or mod_wsgi with several processes."
    echo
  fi
  echo "×H is the figure divided by Herald's for the same operation (Herald = 1.00): above 1 is faster for msgs/s and req/s, slower for p50/p99. Errors are failed requests per run (median). n/a: the system cannot run the workload."
  echo
  echo "Servers:"
  echo
  echo '```sh'
  echo "$HERALD_START_CMD"
  [ -n "$ZAQAR_START_CMD" ] && echo "$ZAQAR_START_CMD"
  [ -n "$NATS_START_CMD" ] && echo "$NATS_START_CMD"
  [ -n "$CEILING_START_CMD" ] && echo "$CEILING_START_CMD"
  echo '```'
  echo
  "$PY" "$REPORT_PY" report "$RES"
} >"$RES/report.md" 2>"$LOGS/report.err" || { show_tail "$LOGS/report.err"; die "writing the report failed"; }
mkdir -p "$(dirname "$OUT")" && cp "$RES/report.md" "$OUT" || die "cannot write $OUT"
cat "$RES/report.md"
log "report written to $OUT ($ELAPSED s of benchmarking)"
finished=1
if [ "$FAILED" = 1 ]; then
  log "some bench runs FAILED (see the report)"
  exit 1
fi
exit 0
