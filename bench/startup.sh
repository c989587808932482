#!/usr/bin/env bash
# Where a pod's start-up milliseconds go: runs a podhost daemon with --trace-startup,
# starts the web + sidecar example pod N times (one at a time, each deleted with
# --force before the next), and tabulates the `podhost-startup` lines of the daemon
# log: the median and p90 of every step of the sandbox, of each container's create
# and of each start, plus the whole pod (sandbox begun → last container started).
#
# Usage: sudo bench/startup.sh [-n N] [-o DIR] [--no-build]
#   -n N        pods (default 30)
#   -o DIR      output directory (default bench/results): startup.csv (one row per
#               step per call), startup.md (the table)
#   --no-build  use the release binaries already built
#
# Binaries come from ${CARGO_TARGET_DIR:-target}/release. The daemon runs under a
# temporary root and cgroup parent (nothing installed is touched) and everything is
# removed on exit. The pods use podhost's default CNI network (bridge, host-local,
# portmap, loopback) on a bridge of their own.
set -euo pipefail

N=30
BUILD=1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OUT="$HERE/results"
CGROUP_PARENT="podhost-bench-startup"
SERVE_ARGS=(--trace-startup)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

bench_args "$@"
bench_start
mkdir -p "$OUT"

for i in $(seq "$N"); do
    name="startup-$i"
    bench_pod "$name" >"$ROOT/$name.yaml"
    t0=$(bench_now_ms)
    ph apply -f "$ROOT/$name.yaml" >/dev/null || die "apply $name failed"
    deadline=$(( $(date +%s) + 60 ))
    until bench_running "$name"; do
        [ "$(date +%s)" -lt "$deadline" ] || { tail -20 "$ROOT/daemon.log" >&2; die "$name not Running in 60 s"; }
        sleep 0.01
    done
    echo "$(( $(bench_now_ms) - t0 ))" >>"$ROOT/running.txt"
    ph delete pod "$name" --force >/dev/null 2>&1 || die "delete $name failed"
    log "pod $i/$N"
done

CSV="$OUT/startup.csv"
# One row per step of each call: pod,call,step,ms ("total" is the call itself,
# "pod" the time from the sandbox's start to the end of the call).
grep '^podhost-startup ' "$ROOT/daemon.log" | awk '
    BEGIN { print "pod,call,step,ms" }
    {
        pod = ""; call = ""; ms = ""; since = ""; steps = ""
        for (i = 2; i <= NF; i++) {
            split($i, kv, "=")
            if (kv[1] == "pod") pod = kv[2]
            else if (kv[1] == "call") call = kv[2]
            else if (kv[1] == "ms") ms = kv[2]
            else if (kv[1] == "since_sandbox_ms") since = kv[2]
            else if (kv[1] == "steps") steps = substr($i, 7)
        }
        print pod "," call ",total," ms
        if (since != "") print pod "," call ",pod," since
        n = split(steps, s, ",")
        for (i = 1; i <= n; i++) { split(s[i], lv, ":"); print pod "," call "," lv[1] "," lv[2] }
    }' >"$CSV"

MD="$OUT/startup.md"
{
    echo "Start-up breakdown, $N pods (web + sidecar), ms; $(date -u +%Y-%m-%dT%H:%M:%SZ), load $(cut -d' ' -f1-3 /proc/loadavg), podhost $(git -C "$REPO" rev-parse --short HEAD)"
    echo
    echo "| call | step | n | median | p90 |"
    echo "|---|---|---|---|---|"
    for call in sandbox container start; do
        # Steps in the order of their first appearance.
        awk -F, -v c="$call" 'NR > 1 && $2 == c && !seen[$3]++ { print $3 }' "$CSV" | while read -r step; do
            [ "$step" = pod ] && continue
            echo "| $call | $step | $(awk -F, -v c="$call" -v s="$step" 'NR > 1 && $2 == c && $3 == s { print $4 }' "$CSV" | bench_stats) |"
        done
    done
    # The pod: from its sandbox's start to its last container started.
    echo "| pod | sandbox begun → last container started | $(awk -F, 'NR > 1 && $2 == "start" && $3 == "pod" { if ($4 > m[$1]) m[$1] = $4 } END { for (p in m) print m[p] }' "$CSV" | bench_stats) |"
    echo "| pod | \`apply\` → both containers Running (polled every ~10 ms + one \`get\`) | $(bench_stats <"$ROOT/running.txt") |"
} >"$MD"
cat "$MD"
