#!/usr/bin/env bash
# Static pod start latency under the upstream kubelet (issue 14): from the moment a
# two-container Pod manifest is renamed into the kubelet's static pod directory until
# `crictl ps` shows both containers Running, with podhost as the kubelet's CRI runtime.
#
# Usage: sudo bench/kubelet.sh [-n N] [-o DIR] [--bin-dir DIR]
#   -n N          iterations (default 10); each pod is removed (manifest deleted, sandbox
#                 gone) before the next one starts.
#   -o DIR        where kubelet.csv goes (default bench/results).
#   --bin-dir DIR podhost's binaries (default $CARGO_TARGET_DIR/release or target/release).
#
# Needs the CRI test kit (../shared/cri-testkit: kubelet v1.26.1, crictl), jq, curl, flock.
# Starts its own daemon under a temporary root (its own CNI bridge and cgroup parent) and
# the kit's kubelet with its root dir under it, holding the same host-wide lock as
# crates/podhost/tests/e2e_kubelet.rs (one kubelet per machine: ports 10248/10250). A pod
# of the podhost CLI runs meanwhile: it pins the busybox image, which the kubelet's image
# GC would otherwise remove whenever the disk is past its thresholds (85% used, or less
# than 10% free for its eviction manager). Everything is removed on exit.
set -euo pipefail

ITER=10
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OUT="$HERE/results"
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release"
POLL_SLEEP=0.01
START_TIMEOUT=60
REMOVE_TIMEOUT=120

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
die() { echo "bench/kubelet: ERROR: $*" >&2; exit 1; }
log() { echo "bench/kubelet: $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        -n) [ $# -ge 2 ] || usage; ITER="$2"; shift 2 ;;
        -o) [ $# -ge 2 ] || usage; OUT="$2"; shift 2 ;;
        --bin-dir) [ $# -ge 2 ] || usage; BIN="$2"; shift 2 ;;
        -h|--help) usage ;;
        *) echo "bench/kubelet: unknown argument $1" >&2; usage ;;
    esac
done
[[ "$ITER" =~ ^[1-9][0-9]*$ ]] || die "-n needs a positive integer, got '$ITER'"
[ "$(id -u)" -eq 0 ] || die "run as root"
for tool in jq curl flock awk sort; do
    command -v "$tool" >/dev/null || die "'$tool' is missing (apt-get install -y $tool)"
done
[ -x "$BIN/podhost" ] || die "no $BIN/podhost (cargo build --release --workspace --bins, or --bin-dir)"
KIT=""
d="$REPO"
while [ "$d" != / ]; do
    [ -x "$d/shared/cri-testkit/bin/kubelet" ] && { KIT="$d/shared/cri-testkit"; break; }
    d="$(dirname "$d")"
done
[ -n "$KIT" ] || die "no shared/cri-testkit beside the repository or an ancestor"

ROOT="$(mktemp -d /tmp/phk.XXXXXX)"
SOCK="$ROOT/run/cri.sock"
BRIDGE="phk$(printf '%04x' $((RANDOM)))"
CGROUP_PARENT="podhost-bench-kubelet"
export KUBELET_ROOT="$ROOT/kubelet"
MANIFESTS="$ROOT/manifests"
CRICTL=("$KIT/bin/crictl" --runtime-endpoint "unix://$SOCK" --image-endpoint "unix://$SOCK" --timeout 30s)
ph() { PODHOST_ROOT="$ROOT" PODHOST_CGROUP_PARENT="$CGROUP_PARENT" "$BIN/podhost" "$@"; }
DAEMON=""
KUBELET_STARTED=""

cleanup() {
    local rc=$?
    set +e
    rm -rf "$MANIFESTS"
    [ -n "$KUBELET_STARTED" ] && "$KIT/kubelet-standalone.sh" stop >/dev/null
    if [ -n "$DAEMON" ] && kill -0 "$DAEMON" 2>/dev/null; then
        # What an interrupted run left: the kubelet's sandboxes and pod cgroups, its logs.
        local uids
        uids=$("${CRICTL[@]}" pods -o json 2>/dev/null | jq -r '.items[].metadata.uid')
        "${CRICTL[@]}" rmp --all --force >/dev/null 2>&1
        for u in $uids; do
            rmdir /sys/fs/cgroup/*/kubepods/*/pod"$u" /sys/fs/cgroup/kubepods/*/pod"$u" 2>/dev/null
            rm -rf /var/log/pods/phbench-*_"$u"
        done
        rm -f /var/log/containers/*_phbench-*_*.log
        ph delete pod pin --grace-period 0 --force >/dev/null 2>&1
        kill "$DAEMON"; wait "$DAEMON" 2>/dev/null
    fi
    umount -l "$ROOT/run" 2>/dev/null
    ip link del "$BRIDGE" 2>/dev/null
    rmdir /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/"$CGROUP_PARENT" 2>/dev/null
    rm -rf "$ROOT"
    exit $rc
}
trap cleanup EXIT INT TERM

exec 9>/run/lock/podhost-kubelet-e2e.lock
flock 9 || die "cannot take /run/lock/podhost-kubelet-e2e.lock"

log "daemon from $BIN, root $ROOT"
PODHOST_ROOT="$ROOT" PODHOST_CGROUP_PARENT="$CGROUP_PARENT" PODHOST_CNI_BRIDGE="$BRIDGE" \
    PODHOST_CLUSTER_CIDR="10.229.$((RANDOM % 250)).0/24" PODHOST_IMAGE_GC_HIGH_THRESHOLD=100 \
    "$BIN/podhost" serve >"$ROOT/daemon.log" 2>&1 </dev/null &
DAEMON=$!
for _ in $(seq 200); do ph get pods >/dev/null 2>&1 && break; sleep 0.1; done
ph get pods >/dev/null || die "daemon did not answer; log: $ROOT/daemon.log"
bash "$REPO/scripts/make-busybox-image.sh" "$ROOT/busybox.tar" >/dev/null
ph image load -i "$ROOT/busybox.tar" >/dev/null
printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: pin}\nspec:\n  containers:\n  - {name: pin, image: busybox, command: [sleep, "86400"]}\n' |
    ph apply -f - >/dev/null
ph wait --for=condition=Ready pod/pin --timeout=60s >/dev/null

mkdir -p "$MANIFESTS"
"$KIT/kubelet-standalone.sh" start "$SOCK" "$MANIFESTS" >&2
KUBELET_STARTED=1
# The kubelet's first sync (node status, image and container GC, cgroups) is not part of
# a pod's start.
sleep 5

mkdir -p "$OUT"
CSV="$OUT/kubelet.csv"
echo "iteration,started_s,seen_s,polls,poll_period_ms" >"$CSV"
for i in $(seq "$ITER"); do
    ns="phbench-$i"
    cat >"$MANIFESTS/.web.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: $ns}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: web, image: busybox, imagePullPolicy: IfNotPresent, command: [httpd, -f, -p, '8080']}
  - {name: sidecar, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, 'while true; do wget -qO- 127.0.0.1:8080 >/dev/null 2>&1; sleep 1; done']}
EOF
    t0=$EPOCHREALTIME
    mv "$MANIFESTS/.web.yaml" "$MANIFESTS/web.yaml"
    polls=0
    while :; do
        polls=$((polls + 1))
        n=$("${CRICTL[@]}" ps --state running -q --label "io.kubernetes.pod.namespace=$ns" | wc -l)
        [ "$n" -eq 2 ] && break
        awk -v a="$t0" -v b="$EPOCHREALTIME" -v t=$START_TIMEOUT 'BEGIN { exit !(b - a > t) }' &&
            die "iteration $i: not running after ${START_TIMEOUT}s; kubelet log: $KUBELET_ROOT/kubelet.log"
        sleep $POLL_SLEEP
    done
    t1=$EPOCHREALTIME
    # When the later container actually started (podhost's startedAt), free of the poll.
    last=$("${CRICTL[@]}" ps -q --label "io.kubernetes.pod.namespace=$ns" |
        xargs "${CRICTL[@]}" inspect | jq -rs 'map(.status.startedAt) | max')
    started=$(date -d "$last" +%s.%N)
    awk -v a="$t0" -v b="$t1" -v s="$started" -v p="$polls" -v i="$i" \
        'BEGIN { printf "%d,%.3f,%.3f,%d,%.1f\n", i, s - a, b - a, p, (b - a) * 1000 / p }' >>"$CSV"
    log "$(tail -1 "$CSV")"
    rm "$MANIFESTS/web.yaml"
    t0=$EPOCHREALTIME
    while [ -n "$("${CRICTL[@]}" pods -q --namespace "$ns")" ]; do
        awk -v a="$t0" -v b="$EPOCHREALTIME" -v t=$REMOVE_TIMEOUT 'BEGIN { exit !(b - a > t) }' &&
            die "iteration $i: sandbox not removed after ${REMOVE_TIMEOUT}s"
        sleep 0.5
    done
done

stats() {
    tail -n +2 "$CSV" | cut -d, -f"$1" | sort -n | awk -v what="$2" '
        { v[NR] = $1; s += $1 }
        END { printf "%s: n=%d min=%.3f median=%.3f mean=%.3f max=%.3f s\n", what,
              NR, v[1], (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), s / NR, v[NR] }'
}
stats 2 "manifest -> later container started (startedAt)"
stats 3 "manifest -> both Running seen by crictl ps"
awk -F, 'NR > 1 { p += $5; n++ } END { printf "poll period (crictl call + sleep): %.1f ms\n", p / n }' "$CSV"
