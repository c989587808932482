#!/usr/bin/env bash
# podhost benchmark: start latency, delete latency and per-pod memory of the
# web + sidecar example pod (examples/web-sidecar.yaml).
#
# Usage: sudo bench/run.sh [-n N] [-m M] [-o DIR] [--no-build] [--podman]
#   -n N        iterations (default 20). Each iteration starts two pods (one
#               deleted the default way, one with --force), so there are 2N
#               start samples and N delete samples of each kind.
#   -m M        pods running at once for the shared-memory measurement (default 10).
#   -o DIR      where to write the CSV files and summary (default bench/results).
#   --no-build  use the binaries already in target/release.
#   --podman    also time the same two containers in a `podman pod` (if podman
#               and its runtime are installed and work here; see BENCHMARKS.md).
#
# It starts its own daemon from target/release under a temporary root
# (PODHOST_ROOT=/tmp/phb.XXXX, PODHOST_CGROUP_PARENT=podhost-bench), so it
# does not touch an installed podhost, and removes everything on exit.
set -euo pipefail

ITER=20
MANY=10
BUILD=1
PODMAN=0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OUT="$HERE/results"
EXAMPLE="$REPO/examples/web-sidecar.yaml"
CGROUP_PARENT="podhost-bench"
POLL_SLEEP=0.01      # sleep between two polls (the CLI call itself adds its own time)
START_TIMEOUT=60     # s: pod to Running
DELETE_TIMEOUT=60    # s: `podhost delete` to return
DAEMON_TIMEOUT=20    # s: daemon to answer

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
die() { echo "bench: ERROR: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        -n) [ $# -ge 2 ] || usage; ITER="$2"; shift 2 ;;
        -m) [ $# -ge 2 ] || usage; MANY="$2"; shift 2 ;;
        -o) [ $# -ge 2 ] || usage; OUT="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --podman) PODMAN=1; shift ;;
        -h|--help) usage ;;
        *) echo "bench: unknown argument $1" >&2; usage ;;
    esac
done
[[ "$ITER" =~ ^[1-9][0-9]*$ ]] || die "-n needs a positive integer, got '$ITER'"
[[ "$MANY" =~ ^[1-9][0-9]*$ ]] || die "-m needs a positive integer, got '$MANY'"
[ "$(id -u)" -eq 0 ] || die "run as root (sudo bench/run.sh): pods need namespaces, mounts and cgroups"
for tool in jq awk sed sort timeout; do
    command -v "$tool" >/dev/null || die "'$tool' is missing (apt-get install -y $tool)"
done
[ -f "$EXAMPLE" ] || die "example not found: $EXAMPLE"

BIN="${CARGO_TARGET_DIR:-$REPO/target}/release"
PH="$BIN/podhost"
ROOT=""
DAEMON_PID=""
PODMAN_USED=""
PM_DIR=""
SHIM_PIDS=()
PODS_MADE=()

# Wall clock in ns. bash's $EPOCHREALTIME (µs resolution) instead of `date +%s%N`:
# same clock, but no fork in the poll loop.
now() { local t="${EPOCHREALTIME/[.,]/}"; echo "${t}000"; }
# Boot-time clock in centiseconds (/proc/uptime), the clock of /proc/PID/stat starttime.
uptime_cs() { awk '{ split($1, a, "."); print a[1] * 100 + substr(a[2] "00", 1, 2) }' /proc/uptime; }
# ms from boot-time centiseconds T0 to the start of process PID (10 ms resolution: CLK_TCK 100).
started_ms() {
    local hz
    hz="$(getconf CLK_TCK)"
    sed 's/^.*) //' "/proc/$2/stat" | awk -v t0="$1" -v hz="$hz" '{ printf "%.0f", ($20 * 100 / hz - t0) * 10 }'
}
# ms between two ns timestamps, 1 decimal
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }

ph() { PODHOST_ROOT="$ROOT" PODHOST_CGROUP_PARENT="$CGROUP_PARENT" "$PH" "$@"; }

# ---------------------------------------------------------------- cleanup
cleanup() {
    local rc=$?
    set +eu
    trap - EXIT INT TERM
    if [ -n "$ROOT" ] && [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        local p
        for p in $(ph get pods -o name 2>/dev/null); do
            p="${p#pod/}"
            log "cleanup: deleting pod $p"
            timeout 30 "$PH" --root "$ROOT" delete pod "$p" --force >/dev/null 2>&1
        done
        kill -TERM "$DAEMON_PID" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
    fi
    if declare -F podman_cleanup >/dev/null; then podman_cleanup; fi
    # Shims whose pod could not be deleted (they outlive the daemon by design).
    local s
    for s in "${SHIM_PIDS[@]}"; do
        if [ -r "/proc/$s/cmdline" ] && tr '\0' ' ' <"/proc/$s/cmdline" | grep -q podhost-shim; then
            log "cleanup: shim $s still alive, killing it"
            kill -KILL "$s" 2>/dev/null
        fi
    done
    if [ -n "$ROOT" ] && [ -d "$ROOT" ]; then
        # Unmount whatever is left under the root (overlays, netns pins, shm), deepest first.
        local m
        awk -v r="$ROOT" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null; done
        if awk -v r="$ROOT" '$2 == r || index($2, r "/") == 1 { f = 1 } END { exit !f }' /proc/mounts; then
            log "cleanup: mounts remain under $ROOT, leaving it in place"
        else
            rm -rf --one-file-system "$ROOT"
        fi
    fi
    local c
    # The pods' cgroups (and podman's, with --podman) can take a moment to empty after a delete.
    local c
    for c in /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/unified/"$CGROUP_PARENT" \
        ${PODMAN_USED:+/sys/fs/cgroup/*/libpod_parent}; do
        for _ in $(seq 50); do
            [ -d "$c" ] || break
            find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
            [ -d "$c" ] && sleep 0.1
        done
        [ -d "$c" ] && log "cleanup: could not remove cgroup $c after 5 s (processes left?)"
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- machine facts
cgroup_mode() {
    if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then echo "v2 (unified)"
    elif [ -d /sys/fs/cgroup/unified ]; then echo "v1 hybrid (v2 mounted at /sys/fs/cgroup/unified)"
    else echo "v1 (legacy)"; fi
}
RUSTC="$(rustc -V 2>/dev/null || echo 'rustc not in PATH')"
MACHINE="$(cat <<EOF
date:        $(date -u +%Y-%m-%dT%H:%M:%SZ)
nproc:       $(nproc)
cpu:         $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
memory:      $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
kernel:      $(uname -r)
os:          $(awk -F= '$1 == "PRETTY_NAME" { gsub(/"/, "", $2); print $2 }' /etc/os-release)
rustc:       $RUSTC
cgroups:     $(cgroup_mode)
podhost:     $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')
iterations:  $ITER (x2 pods), concurrent pods for memory: $MANY
EOF
)"
echo "== machine"
echo "$MACHINE"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "loadavg at start: $LOAD_START"
echo

# ---------------------------------------------------------------- build + daemon
if [ "$BUILD" = 1 ]; then
    command -v cargo >/dev/null || PATH="$PATH:${HOME:-/root}/.cargo/bin"
    command -v cargo >/dev/null || die "cargo not found (install rustup, or pass --no-build)"
    log "building release binaries"
    (cd "$REPO" && cargo build --release --workspace --bins) >&2 || die "cargo build failed"
fi
for b in podhost podhost-shim podhost-runc pause; do
    [ -x "$BIN/$b" ] || die "$BIN/$b missing: build with cargo build --release --workspace --bins"
done

ROOT="$(mktemp -d /tmp/phb.XXXX)"
mkdir -p "$OUT"
log "root $ROOT, cgroup parent $CGROUP_PARENT"
PODHOST_ROOT="$ROOT" PODHOST_CGROUP_PARENT="$CGROUP_PARENT" "$PH" serve </dev/null >"$ROOT/daemon.log" 2>&1 &
DAEMON_PID=$!
deadline=$(( $(date +%s) + DAEMON_TIMEOUT ))
until ph get pods >/dev/null 2>&1; do
    kill -0 "$DAEMON_PID" 2>/dev/null || { tail -20 "$ROOT/daemon.log" >&2; die "daemon exited at start (log above)"; }
    [ "$(date +%s)" -lt "$deadline" ] || { tail -20 "$ROOT/daemon.log" >&2; die "daemon did not answer within ${DAEMON_TIMEOUT}s"; }
    sleep 0.05
done
log "daemon $DAEMON_PID up; loading busybox"
bash "$REPO/scripts/make-busybox-image.sh" "$ROOT/busybox.tar" >/dev/null || die "make-busybox-image.sh failed (is busybox-static installed?)"
ph image load -i "$ROOT/busybox.tar" >/dev/null || die "image load failed"

# ---------------------------------------------------------------- helpers
manifest() { # NAME -> path of a copy of the example with metadata.name = NAME
    local f="$ROOT/$1.yaml"
    sed "s/^  name: web-sidecar\$/  name: $1/" "$EXAMPLE" >"$f"
    [ "$(grep -c "^  name: $1\$" "$f")" = 1 ] || die "could not rename the pod in $EXAMPLE (metadata.name changed?)"
    echo "$f"
}

# Both containers Running (and as many statuses as spec containers), checked with jq.
pod_running_jq() {
    ph get pod "$1" -o json 2>/dev/null | jq -e '
        (.spec.containers | length) as $n
        | [.status.containerStatuses[]? | select(.state.running != null)] | length == $n' >/dev/null 2>&1
}
# The same test inside the poll loop, without jq (a jq start costs ~15 ms here, 5x
# a `podhost get`): count `"state":{"running":` in the JSON. The example has
# no init containers, so these are the two app containers. pod_running_jq
# confirms the answer once the loop ends.
NCTR=2
pod_running() {
    local j n=0
    j="$(ph get pod "$1" -o json 2>/dev/null)" || return 1
    j="${j//[[:space:]]/}"
    while [[ "$j" == *'"state":{"running":'* ]]; do
        j="${j#*\"state\":\{\"running\":}"
        n=$((n + 1))
    done
    [ "$n" -ge "$NCTR" ]
}

# pids of the pod's running processes from `ps -a` (columns parsed from the right:
# PID last, POD second to last, NAME fifth from the right): "NAME PID" lines.
pod_pids() {
    ph ps -a 2>/dev/null | awk -v pod="$1" 'NR > 1 && ($(NF-1) == pod || $(NF-1) == "default/" pod) && $(NF-5) == "Running" && $NF ~ /^[0-9]+$/ { print $(NF-4), $NF }'
}
pause_pid() { pod_pids "$1" | awk '$1 == "POD" { print $2; exit }'; }

ppid_of() { awk '{ print $4 }' "/proc/$1/stat" 2>/dev/null; }

alive() { # pid alive and not a zombie
    [ -r "/proc/$1/stat" ] || return 1
    local st
    st="$(sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f1)"
    [ "$st" != Z ] && [ "$st" != X ]
}

# "vmrss rssanon rssfile pss pss_anon pss_file" in KiB
mem_of() {
    local pid="$1" st sm
    st="$(awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } END { print r + 0, a + 0, f + 0 }' "/proc/$pid/status")"
    sm="$(awk '/^Pss:/ { p = $2 } /^Pss_Anon:/ { a = $2 } /^Pss_File:/ { f = $2 } END { print p + 0, a + 0, f + 0 }' "/proc/$pid/smaps_rollup")"
    echo "$st $sm"
}

# Wait until pod NAME is Running (as the API reports it); sets T_RUN (ns) and POLLS.
wait_running() {
    local name="$1" t0="$2" deadline
    deadline=$(( t0 + START_TIMEOUT * 1000000000 ))
    POLLS=0
    while :; do
        POLLS=$((POLLS + 1))
        if pod_running "$name"; then T_RUN=$(now); return 0; fi
        if [ "$(now)" -gt "$deadline" ]; then
            ph describe pod "$name" >&2 || true
            tail -20 "$ROOT/daemon.log" >&2
            die "pod $name not Running within ${START_TIMEOUT}s (describe and daemon log above)"
        fi
        sleep "$POLL_SLEEP"
    done
}

# Start a pod and record its start timings; sets PAUSE, SHIM and the timing vars.
start_pod() {
    local name="$1" f t0 t_apply b0 pids
    f="$(manifest "$name")"
    PODS_MADE+=("$name")
    b0=$(uptime_cs)
    t0=$(now)
    ph apply -f "$f" >/dev/null || die "podhost apply -f $f failed"
    t_apply=$(now)
    wait_running "$name" "$t0"
    pod_running_jq "$name" || die "pod $name: the poll saw both containers running, jq does not agree"
    pids="$(pod_pids "$name")"
    PAUSE="$(awk '$1 == "POD" { print $2 }' <<<"$pids")"
    [ -n "$PAUSE" ] || die "pod $name Running but no running pause row in 'podhost ps -a'"
    [ "$(wc -l <<<"$pids")" = 3 ] || die "pod $name: expected pause + 2 running containers in 'podhost ps -a', got: $pids"
    # Kernel start times of the processes (what the poll cannot see: when they began).
    PAUSE_MS="$(started_ms "$b0" "$PAUSE")"
    CTRS_MS="$(awk '$1 != "POD" { print $2 }' <<<"$pids" | while read -r p; do started_ms "$b0" "$p"; echo; done | sort -n | tail -1)"
    SHIM="$(ppid_of "$PAUSE")"
    [ -n "$SHIM" ] || die "no parent for pause $PAUSE of pod $name"
    grep -q podhost-shim "/proc/$SHIM/cmdline" 2>/dev/null || log "warning: parent $SHIM of pause $PAUSE is not a podhost-shim ($(tr '\0' ' ' <"/proc/$SHIM/cmdline"))"
    SHIM_PIDS+=("$SHIM")
    APPLY_MS=$(ms "$t0" "$t_apply")
    RUN_MS=$(ms "$t0" "$T_RUN")
}

# Delete a pod; sets DEL_MS (until `podhost delete` returns) and GONE_MS (until the shim has exited).
delete_pod() {
    local name="$1" shim="$2"; shift 2
    local t0 t1 deadline
    t0=$(now)
    timeout "$DELETE_TIMEOUT" "$PH" --root "$ROOT" delete pod "$name" "$@" >/dev/null ||
        die "podhost delete pod $name $* failed or took more than ${DELETE_TIMEOUT}s"
    t1=$(now)
    deadline=$(( t1 + 30 * 1000000000 ))
    while alive "$shim"; do
        [ "$(now)" -lt "$deadline" ] || { log "warning: shim $shim of $name still alive 30s after delete returned"; break; }
        sleep 0.005
    done
    DEL_MS=$(ms "$t0" "$t1")
    GONE_MS=$(ms "$t0" "$(now)")
    if ph get pod "$name" >/dev/null 2>&1; then die "pod $name still listed after 'podhost delete' returned"; fi
}

# ---------------------------------------------------------------- 1. latency + single-pod memory
LAT="$OUT/latency.csv"
MEM="$OUT/memory.csv"
echo "iteration,pod,delete_mode,apply_return_ms,pause_started_ms,containers_started_ms,running_ms,polls,delete_return_ms,shim_exit_ms" >"$LAT"
echo "scenario,pods_running,pod,process,pid,vmrss_kib,rssanon_kib,rssfile_kib,pss_kib,pss_anon_kib,pss_file_kib" >"$MEM"

run_tag="$(date +%s)"
for i in $(seq "$ITER"); do
    for mode in default force; do
        name="bench-$run_tag-$i-$mode"
        start_pod "$name"
        if [ "$mode" = default ]; then
            sleep 1   # let the pod settle (first sidecar fetch, log lines) before reading memory
            for p in shim:"$SHIM" pause:"$PAUSE"; do
                echo "single,1,$name,${p%%:*},${p#*:},$(mem_of "${p#*:}" | tr ' ' ',')" >>"$MEM"
            done
            delete_pod "$name" "$SHIM"
        else
            delete_pod "$name" "$SHIM" --force
        fi
        echo "$i,$name,$mode,$APPLY_MS,$PAUSE_MS,$CTRS_MS,$RUN_MS,$POLLS,$DEL_MS,$GONE_MS" >>"$LAT"
        log "iter $i/$ITER $mode: apply ${APPLY_MS} ms, pause started ${PAUSE_MS} ms, containers started ${CTRS_MS} ms, Running ${RUN_MS} ms ($POLLS polls), delete ${DEL_MS} ms, shim gone ${GONE_MS} ms"
    done
done

# ---------------------------------------------------------------- 2. memory with MANY pods at once
log "starting $MANY pods at once for the shared-page measurement"
many=()
for k in $(seq "$MANY"); do
    name="bench-$run_tag-many-$k"
    ph apply -f "$(manifest "$name")" >/dev/null || die "apply $name failed"
    many+=("$name")
done
declare -A MPAUSE MSHIM
for name in "${many[@]}"; do
    wait_running "$name" "$(now)"
    MPAUSE[$name]="$(pause_pid "$name")"
    [ -n "${MPAUSE[$name]}" ] || die "no pause for $name"
    MSHIM[$name]="$(ppid_of "${MPAUSE[$name]}")"
    SHIM_PIDS+=("${MSHIM[$name]}")
done
sleep 2
for name in "${many[@]}"; do
    for p in shim:"${MSHIM[$name]}" pause:"${MPAUSE[$name]}"; do
        echo "concurrent,$MANY,$name,${p%%:*},${p#*:},$(mem_of "${p#*:}" | tr ' ' ',')" >>"$MEM"
    done
done
for name in "${many[@]}"; do
    delete_pod "$name" "${MSHIM[$name]}" --force
done

# ---------------------------------------------------------------- 3. optional podman comparison
PODMAN_CSV="$OUT/podman.csv"
rm -f "$PODMAN_CSV"
if [ "$PODMAN" = 1 ]; then
    PODMAN_USED=1
    # shellcheck source=bench/podman.sh
    . "$HERE/podman.sh"
    podman_bench "$ROOT/busybox.tar" "$ITER" "$PODMAN_CSV" || log "podman comparison failed (see above); skipped"
fi

# ---------------------------------------------------------------- summary
# stats LABEL UNIT: numbers on stdin -> markdown row n | min | median | p90 | max (nearest rank)
stats() {
    sort -g | awk -v label="$1" '
        { v[++n] = $1 }
        END {
            if (n == 0) { printf "| %s | 0 | - | - | - | - |\n", label; exit }
            p90 = int(0.9 * n); if (p90 < 0.9 * n) p90++
            med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            printf "| %s | %d | %.1f | %.1f | %.1f | %.1f |\n", label, n, v[1], med, v[p90], v[n]
        }'
}
col() { # FILE COLUMN-NAME [awk filter on named columns]
    awk -F, -v c="$2" -v flt="${3:-}" '
        NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i; next }
        flt == "" || $h[substr(flt, 1, index(flt, "=") - 1)] == substr(flt, index(flt, "=") + 1) { print $h[c] }' "$1"
}
memcol() { # SCENARIO PROCESS FIELD
    awk -F, -v s="$1" -v p="$2" -v c="$3" '
        NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i; next }
        $h["scenario"] == s && $h["process"] == p { print $h[c] }' "$MEM"
}
per_pod() { # SCENARIO FIELD -> shim+pause sum per pod
    awk -F, -v s="$1" -v c="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) h[$i] = i; next }
        $h["scenario"] == s { sum[$h["pod"]] += $h[c] }
        END { for (p in sum) print sum[p] }' "$MEM"
}

SUM="$OUT/summary.md"
{
    echo "## Machine"
    echo
    echo '```'
    echo "$MACHINE"
    echo "loadavg at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo '```'
    echo
    echo "## Start latency (ms, from before \`podhost apply\`; $((ITER * 2)) pods)"
    echo
    echo "| metric | n | min | median | p90 | max |"
    echo "|---|---|---|---|---|---|"
    col "$LAT" apply_return_ms | stats "\`podhost apply\` returns"
    col "$LAT" pause_started_ms | stats "pause process started (kernel, ±10 ms)"
    col "$LAT" containers_started_ms | stats "both container processes started (kernel, ±10 ms)"
    col "$LAT" running_ms | stats "API: both containers Running (polled)"
    awk -F, 'NR > 1 { print $7 / $8 }' "$LAT" | stats "poll period (running_ms / polls)"
    echo
    echo "## Delete latency (ms; $ITER pods each)"
    echo
    echo "| metric | n | min | median | p90 | max |"
    echo "|---|---|---|---|---|---|"
    col "$LAT" delete_return_ms delete_mode=default | stats "\`delete pod\` (grace 5 s from the spec) returns"
    col "$LAT" shim_exit_ms delete_mode=default | stats "... shim exited"
    col "$LAT" delete_return_ms delete_mode=force | stats "\`delete pod --force\` returns"
    col "$LAT" shim_exit_ms delete_mode=force | stats "... shim exited"
    echo
    for scen in single concurrent; do
        if [ "$scen" = single ]; then
            echo "## Memory, one pod running (KiB; $ITER samples, 1 s after Running)"
        else
            echo "## Memory, $MANY pods running at once (KiB; one sample per pod, 2 s after all Running)"
        fi
        echo
        echo "| metric | n | min | median | p90 | max |"
        echo "|---|---|---|---|---|---|"
        for proc in shim pause; do
            for f in vmrss rssanon rssfile pss; do
                memcol "$scen" "$proc" "${f}_kib" | stats "$proc $f"
            done
        done
        per_pod "$scen" vmrss_kib | stats "**shim + pause VmRSS per pod**"
        per_pod "$scen" pss_kib | stats "**shim + pause Pss per pod**"
        echo
    done
    if [ -s "$PODMAN_CSV" ]; then
        echo "## Podman comparison (ms / KiB)"
        echo
        echo "| metric | n | min | median | p90 | max |"
        echo "|---|---|---|---|---|---|"
        col "$PODMAN_CSV" play_kube_ms | stats "\`podman play kube\` returns"
        col "$PODMAN_CSV" running_ms | stats "both containers running (podman inspect)"
        col "$PODMAN_CSV" delete_ms | stats "\`podman pod rm -f -t 0\` returns"
        col "$PODMAN_CSV" overhead_rss_kib | stats "3 conmons + infra VmRSS per pod (one pod running)"
        col "$PODMAN_CSV" overhead_pss_kib | stats "3 conmons + infra Pss per pod (one pod running)"
        echo
    fi
    echo "Raw data: \`$(basename "$LAT")\`, \`$(basename "$MEM")\`$([ -s "$PODMAN_CSV" ] && echo ", \`$(basename "$PODMAN_CSV")\`")."
} >"$SUM"
echo "== results (also in $SUM)"
cat "$SUM"
