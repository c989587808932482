#!/usr/bin/env bash
# Density: N web + sidecar pods applied in one `podhost apply` (one multi-document
# file), then: time until all are Running, daemon CPU while they idle, `get pods` and
# `ps -a` latency (median of 10 calls each), daemon VmRSS, VmRSS/Pss of every shim +
# pause, the memory cgroup of an idle pod, and the time to delete them all (grace 0).
#
# Usage: sudo [BATCH=B] bench/density.sh [-n N] [-o DIR] [--no-build]   (default N=100)
#   Writes DIR/density.md (default bench/results). Release binaries from
#   ${CARGO_TARGET_DIR:-target}/release (or PODHOST_BENCH_BIN); own root, cgroup parent
#   and bridge. BATCH=B applies the pods B at a time, each batch waited for until all
#   pods so far run, and reports each batch's time.
set -euo pipefail

N=100
BUILD=1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OUT="$HERE/results"
CGROUP_PARENT="podhost-bench-density"
# BENCH_SERVE_ARGS: extra `podhost serve` arguments, space-separated (e.g. to switch a
# periodic task off and see what it costs).
read -r -a SERVE_ARGS <<<"${BENCH_SERVE_ARGS:-}"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
bench_args "$@"
BATCH="${BATCH:-$N}"
[[ "$BATCH" =~ ^[1-9][0-9]*$ ]] || die "BATCH needs a positive integer"
# More pods than a /24 holds: a /16 of its own.
[ "$N" -gt 250 ] && export BENCH_CLUSTER_CIDR="10.$(( 150 + $$ % 50 )).0.0/16"
bench_start
mkdir -p "$OUT"

# Pods [FROM, TO] applied in one file; waits until TO pods run; prints apply's ms.
apply_batch() {
    local from="$1" to="$2" i t running deadline
    for i in $(seq "$from" "$to"); do
        [ "$i" -gt "$from" ] && echo "---"
        bench_pod "dens-$i"
    done >"$ROOT/pods-$from.yaml"
    t=$(bench_now_ms)
    ph apply -f "$ROOT/pods-$from.yaml" >/dev/null || die "apply failed"
    echo $(( $(bench_now_ms) - t ))
    deadline=$(( $(date +%s) + 600 ))
    while :; do
        running="$(ph get pods 2>/dev/null | awk '$2 == "2/2" && $3 == "Running"' | wc -l)"
        [ "$running" -ge "$to" ] && break
        [ "$(date +%s)" -lt "$deadline" ] || die "only $running of $to pods Running after 600 s"
        sleep 0.1
    done
}

t0=$(bench_now_ms)
batches=""
t_apply=""
from=1
while [ "$from" -le "$N" ]; do
    to=$(( from + BATCH - 1 )); [ "$to" -gt "$N" ] && to="$N"
    tb=$(bench_now_ms)
    a="$(apply_batch "$from" "$to")"
    t_apply="${t_apply:+$t_apply, }$a"
    tb=$(( $(bench_now_ms) - tb ))
    batches="${batches:+$batches, }$tb"
    log "pods $from-$to Running after $tb ms (apply returned in $a ms)"
    from=$(( to + 1 ))
done
t_running=$(( $(bench_now_ms) - t0 ))
log "$N pods Running after $t_running ms"
sleep 5   # let the pods settle (first sidecar fetches, log lines)

lat() { # command... -> ms of each of 10 calls, one per line
    local k s
    for k in $(seq 10); do s=$(bench_now_ms); "$@" >/dev/null; echo $(( $(bench_now_ms) - s )); done
}
# Daemon CPU with N idle pods: its utime + stime over IDLE_SECS (default 30), as a
# percentage of one core.
idle_secs="${IDLE_SECS:-30}"
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat"; }
c0="$(cpu_ticks)"
sleep "$idle_secs"
idle_cpu="$(awk -v a="$c0" -v b="$(cpu_ticks)" -v hz="$(getconf CLK_TCK)" -v s="$idle_secs" \
    'BEGIN { printf "%.2f", (b - a) / hz / s * 100 }')"
log "daemon CPU with $N idle pods: $idle_cpu % of a core"
get_ms="$(lat ph get pods | bench_stats)"
ps_ms="$(lat ph ps -a | bench_stats)"
daemon_rss="$(awk '/^VmRSS:/ { print $2 }' "/proc/$DAEMON_PID/status")"

# Per pod: shim + pause VmRSS and Pss (pause = the POD rows of `ps -a`, shim its parent).
: >"$ROOT/mem.txt"
for pause in $(ph ps -a | awk '$(NF-4) == "POD" && $NF ~ /^[0-9]+$/ { print $NF }'); do
    shim="$(awk '{ print $4 }' "/proc/$pause/stat")"
    rss=0; pss=0
    for p in "$shim" "$pause"; do
        rss=$(( rss + $(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status") ))
        pss=$(( pss + $(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup") ))
    done
    echo "$rss $pss" >>"$ROOT/mem.txt"
done
# An idle pod's memory cgroup (v1 memory controller, or v2): its usage, kernel memory included.
cg_kib=""
for base in /sys/fs/cgroup/memory /sys/fs/cgroup; do
    [ -d "$base/$CGROUP_PARENT" ] || continue
    find "$base/$CGROUP_PARENT" -mindepth 1 -maxdepth 3 -type d -name 'pod*' | while read -r d; do
        for f in memory.usage_in_bytes memory.current; do
            [ -r "$d/$f" ] && { echo $(( $(cat "$d/$f") / 1024 )); break; }
        done
    done >"$ROOT/cg.txt"
    [ -s "$ROOT/cg.txt" ] && { cg_kib="$(bench_stats <"$ROOT/cg.txt")"; break; }
done

t0=$(bench_now_ms)
bench_delete_all >/dev/null 2>&1 || die "delete failed"
t_delete=$(( $(bench_now_ms) - t0 ))

MD="$OUT/density.md"
{
    echo "Density, $N web + sidecar pods applied $BATCH at a time; binaries $BIN; $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), podhost $(git -C "$REPO" rev-parse --short HEAD)"
    echo
    echo "| figure | value |"
    echo "|---|---|"
    echo "| \`apply\` of $BATCH pods returns | $t_apply ms |"
    echo "| all $N pods 2/2 Running | $t_running ms |"
    [ "$BATCH" -lt "$N" ] && echo "| each batch of $BATCH applied → all so far Running | $batches ms |"
    echo "| \`get pods\` with $N pods (n / median / p90, ms) | $get_ms |"
    echo "| \`ps -a\` with $N pods (n / median / p90, ms) | $ps_ms |"
    echo "| daemon CPU, $N idle pods (over $idle_secs s) | $idle_cpu % of a core${SERVE_ARGS[*]:+ (serve ${SERVE_ARGS[*]})} |"
    echo "| daemon VmRSS | $daemon_rss KiB |"
    echo "| shim + pause VmRSS per pod (n / median / p90, KiB) | $(awk '{ print $1 }' "$ROOT/mem.txt" | bench_stats) |"
    echo "| shim + pause Pss per pod (n / median / p90, KiB) | $(awk '{ print $2 }' "$ROOT/mem.txt" | bench_stats) |"
    echo "| memory cgroup of a pod (n / median / p90, KiB) | ${cg_kib:-not found} |"
    echo "| \`delete pod --force\` of all $N | $t_delete ms |"
} >"$MD"
cat "$MD"
