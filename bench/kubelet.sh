#!/usr/bin/env bash
# Static pod start latency under the upstream kubelet (issue 14): from the moment a
# two-container Pod manifest is renamed into the kubelet's static pod directory until
# `crictl ps` shows both containers Running, with podhost and with containerd 1.6 (+ runc)
# as the same kubelet's CRI runtime, in alternating blocks.
#
# Usage: sudo bench/kubelet.sh [-n N] [-b B] [-o DIR] [--bin-dir DIR] [--runtimes "podhost containerd"]
#   -n N          iterations per runtime (default 10); each pod is removed (manifest
#                 deleted, sandbox gone) before the next one starts.
#   -b B          iterations per block (default 5): the kubelet is restarted on the other
#                 runtime after each block, so drift in the machine's load hits both alike.
#   -o DIR        where kubelet.csv goes (default bench/results).
#   --bin-dir DIR podhost's binaries (default $CARGO_TARGET_DIR/release or target/release).
#   --runtimes    which runtimes (default both; containerd needs `containerd` and `runc`).
#
# Needs the CRI test kit (../shared/cri-testkit: kubelet v1.26.1, crictl, its loopback
# registry for containerd's pause image), jq, curl, flock. Starts its own podhost daemon
# and containerd under a temporary root (their own CNI bridges; podhost its own cgroup
# parent) and the kit's kubelet with its root dir under it, holding the same host-wide
# lock as crates/podhost/tests/e2e_kubelet.rs (one kubelet per machine: ports 10248/10250).
# A pod of the podhost CLI runs meanwhile: it pins the busybox image, which the kubelet's
# image GC would otherwise remove whenever the disk is past its thresholds. containerd runs
# with restrict_oom_score_adj (here nothing may lower an oom_score_adj, and runc fails the
# pause's -998). Everything is removed on exit.
set -euo pipefail

ITER=10
BLOCK=5
RUNTIMES="podhost containerd"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OUT="$HERE/results"
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release"
POLL_SLEEP=0.01
START_TIMEOUT=60
REMOVE_TIMEOUT=120
REG_PORT=5059

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
die() { echo "bench/kubelet: ERROR: $*" >&2; exit 1; }
log() { echo "bench/kubelet: $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        -n) [ $# -ge 2 ] || usage; ITER="$2"; shift 2 ;;
        -b) [ $# -ge 2 ] || usage; BLOCK="$2"; shift 2 ;;
        -o) [ $# -ge 2 ] || usage; OUT="$2"; shift 2 ;;
        --bin-dir) [ $# -ge 2 ] || usage; BIN="$2"; shift 2 ;;
        --runtimes) [ $# -ge 2 ] || usage; RUNTIMES="$2"; shift 2 ;;
        -h|--help) usage ;;
        *) echo "bench/kubelet: unknown argument $1" >&2; usage ;;
    esac
done
[[ "$ITER" =~ ^[1-9][0-9]*$ ]] || die "-n needs a positive integer, got '$ITER'"
[[ "$BLOCK" =~ ^[1-9][0-9]*$ ]] || die "-b needs a positive integer, got '$BLOCK'"
[ "$(id -u)" -eq 0 ] || die "run as root"
for tool in jq curl flock awk sort; do
    command -v "$tool" >/dev/null || die "'$tool' is missing (apt-get install -y $tool)"
done
for rt in $RUNTIMES; do
    case "$rt" in
        podhost) [ -x "$BIN/podhost" ] ||
            die "no $BIN/podhost (cargo build --release --workspace --bins, or --bin-dir)" ;;
        containerd)
            for tool in containerd ctr runc; do
                command -v "$tool" >/dev/null || die "'$tool' is missing (apt-get install -y containerd runc)"
            done ;;
        *) die "unknown runtime '$rt' (podhost, containerd)" ;;
    esac
done
KIT=""
d="$REPO"
while [ "$d" != / ]; do
    [ -x "$d/shared/cri-testkit/bin/kubelet" ] && { KIT="$d/shared/cri-testkit"; break; }
    d="$(dirname "$d")"
done
[ -n "$KIT" ] || die "no shared/cri-testkit beside the repository or an ancestor"

ROOT="$(mktemp -d /tmp/phk.XXXXXX)"
PH_SOCK="$ROOT/run/cri.sock"
BRIDGE="phk$(printf '%04x' $((RANDOM)))"
CGROUP_PARENT="podhost-bench-kubelet"
CTD="$ROOT/containerd"
CTD_SOCK="$CTD/containerd.sock"
CTD_BRIDGE="ctk$(printf '%04x' $((RANDOM)))"
export KUBELET_ROOT="$ROOT/kubelet"
MANIFESTS="$ROOT/manifests"
export STATE="$ROOT/registry"
crictl_at() {
    local sock="$1"
    shift
    "$KIT/bin/crictl" --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" --timeout 30s "$@"
}
sock_of() { case "$1" in podhost) echo "$PH_SOCK" ;; containerd) echo "$CTD_SOCK" ;; esac; }
ph() { PODHOST_ROOT="$ROOT" PODHOST_CGROUP_PARENT="$CGROUP_PARENT" "$BIN/podhost" "$@"; }
DAEMON=""
CTD_PID=""
REGISTRY=""
KUBELET_STARTED=""

# What a kubelet left on a runtime: its sandboxes, pod cgroups and logs.
remove_kubelet_pods() {
    local sock="$1" uids u
    uids=$(crictl_at "$sock" pods -o json 2>/dev/null | jq -r '.items[].metadata.uid')
    crictl_at "$sock" rmp --all --force >/dev/null 2>&1
    for u in $uids; do
        rmdir /sys/fs/cgroup/*/kubepods/*/pod"$u" /sys/fs/cgroup/kubepods/*/pod"$u" 2>/dev/null
        rm -rf /var/log/pods/phbench-*_"$u"
    done
    rm -f /var/log/containers/*_phbench-*_*.log
}

cleanup() {
    local rc=$?
    set +e
    rm -rf "$MANIFESTS"
    [ -n "$KUBELET_STARTED" ] && "$KIT/kubelet-standalone.sh" stop >/dev/null
    if [ -n "$DAEMON" ] && kill -0 "$DAEMON" 2>/dev/null; then
        remove_kubelet_pods "$PH_SOCK"
        ph delete pod pin --grace-period 0 --force >/dev/null 2>&1
        kill "$DAEMON"
        wait "$DAEMON" 2>/dev/null
    fi
    if [ -n "$CTD_PID" ] && kill -0 "$CTD_PID" 2>/dev/null; then
        remove_kubelet_pods "$CTD_SOCK"
        kill "$CTD_PID"
        wait "$CTD_PID" 2>/dev/null
    fi
    pkill -f "containerd-shim-runc-v2 -namespace k8s.io -address $CTD_SOCK" 2>/dev/null
    [ -n "$REGISTRY" ] && "$KIT/registry.sh" stop >/dev/null 2>&1
    umount -l "$ROOT/run" 2>/dev/null
    grep -F " $ROOT/" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    ip link del "$BRIDGE" 2>/dev/null
    ip link del "$CTD_BRIDGE" 2>/dev/null
    rmdir /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/"$CGROUP_PARENT" 2>/dev/null
    rm -rf "$ROOT"
    exit $rc
}
trap cleanup EXIT INT TERM

exec 9>/run/lock/podhost-kubelet-e2e.lock
flock 9 || die "cannot take /run/lock/podhost-kubelet-e2e.lock"

bash "$REPO/scripts/make-busybox-image.sh" "$ROOT/busybox.tar" >/dev/null

start_podhost() {
    log "podhost daemon from $BIN, root $ROOT"
    PODHOST_ROOT="$ROOT" PODHOST_CGROUP_PARENT="$CGROUP_PARENT" PODHOST_CNI_BRIDGE="$BRIDGE" \
        PODHOST_CLUSTER_CIDR="10.229.$((RANDOM % 250)).0/24" PODHOST_IMAGE_GC_HIGH_THRESHOLD=100 \
        "$BIN/podhost" serve >"$ROOT/daemon.log" 2>&1 </dev/null &
    DAEMON=$!
    for _ in $(seq 200); do ph get pods >/dev/null 2>&1 && break; sleep 0.1; done
    ph get pods >/dev/null 2>&1 || die "daemon did not answer; log: $ROOT/daemon.log"
    ph image load -i "$ROOT/busybox.tar" >/dev/null
    printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: pin}\nspec:\n  containers:\n  - {name: pin, image: busybox, command: [sleep, "86400"]}\n' |
        ph apply -f - >/dev/null
    ph wait --for=condition=Ready pod/pin --timeout=60s >/dev/null
}

# containerd as the kit measured it (its CRI plugin, runc, a bridge network like
# podhost's), with its own root, state, socket and the kit's registry for the pause image.
start_containerd() {
    log "containerd $(containerd --version | awk '{print $3}') + runc $(runc --version | awk 'NR == 1 {print $3}'), root $CTD"
    "$KIT/registry.sh" start "$REG_PORT" >/dev/null
    REGISTRY=1
    mkdir -p "$CTD/net.d"
    printf '%s\n' \
        '{"cniVersion": "1.0.0", "name": "ctkbench", "plugins": [' \
        "  {\"type\": \"bridge\", \"bridge\": \"$CTD_BRIDGE\", \"isGateway\": true, \"ipMasq\": true, \"hairpinMode\": true," \
        "   \"ipam\": {\"type\": \"host-local\", \"ranges\": [[{\"subnet\": \"10.228.$((RANDOM % 250)).0/24\"}]]," \
        "            \"routes\": [{\"dst\": \"0.0.0.0/0\"}], \"dataDir\": \"$CTD/ipam\"}}," \
        '  {"type": "portmap", "capabilities": {"portMappings": true}},' \
        '  {"type": "loopback"}]}' >"$CTD/net.d/10-bench.conflist"
    printf '%s\n' \
        'version = 2' \
        "root = \"$CTD/root\"" \
        "state = \"$CTD/state\"" \
        '[grpc]' \
        "  address = \"$CTD_SOCK\"" \
        '[ttrpc]' \
        "  address = \"$CTD_SOCK.ttrpc\"" \
        '[plugins."io.containerd.grpc.v1.cri"]' \
        '  sandbox_image = "registry.k8s.io/pause:3.6"' \
        '  restrict_oom_score_adj = true' \
        '  [plugins."io.containerd.grpc.v1.cri".cni]' \
        '    bin_dir = "/usr/lib/cni"' \
        "    conf_dir = \"$CTD/net.d\"" \
        '  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.k8s.io"]' \
        "    endpoint = [\"http://127.0.0.1:$REG_PORT\"]" >"$CTD/config.toml"
    containerd --config "$CTD/config.toml" >"$ROOT/containerd.log" 2>&1 </dev/null &
    CTD_PID=$!
    for _ in $(seq 200); do [ -S "$CTD_SOCK" ] && break; sleep 0.1; done
    [ -S "$CTD_SOCK" ] || die "containerd did not start; log: $ROOT/containerd.log"
    ctr -a "$CTD_SOCK" -n k8s.io images import "$ROOT/busybox.tar" >/dev/null
    crictl_at "$CTD_SOCK" pull registry.k8s.io/pause:3.6 >/dev/null
}

for rt in $RUNTIMES; do "start_$rt"; done

mkdir -p "$MANIFESTS" "$OUT"
CSV="$OUT/kubelet.csv"
echo "runtime,iteration,started_s,seen_s,polls,poll_period_ms" >"$CSV"

# One pod on the runtime the kubelet runs on now: manifest in, both containers Running,
# manifest out, sandbox gone.
iteration() {
    local rt="$1" i="$2" sock ns t0 t1 polls n last started
    sock="$(sock_of "$rt")"
    ns="phbench-$rt-$i"
    printf '%s\n' \
        'apiVersion: v1' \
        'kind: Pod' \
        "metadata: {name: web, namespace: $ns}" \
        'spec:' \
        '  terminationGracePeriodSeconds: 1' \
        '  containers:' \
        "  - {name: web, image: busybox, imagePullPolicy: IfNotPresent, command: [httpd, -f, -p, '8080']}" \
        "  - {name: sidecar, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, 'while true; do wget -qO- 127.0.0.1:8080 >/dev/null 2>&1; sleep 1; done']}" \
        >"$MANIFESTS/.web.yaml"
    t0=$EPOCHREALTIME
    mv "$MANIFESTS/.web.yaml" "$MANIFESTS/web.yaml"
    polls=0
    while :; do
        polls=$((polls + 1))
        n=$(crictl_at "$sock" ps --state running -q --label "io.kubernetes.pod.namespace=$ns" | wc -l)
        [ "$n" -eq 2 ] && break
        awk -v a="$t0" -v b="$EPOCHREALTIME" -v t=$START_TIMEOUT 'BEGIN { exit !(b - a > t) }' &&
            die "$rt iteration $i: not running after ${START_TIMEOUT}s; kubelet log: $KUBELET_ROOT/kubelet.log"
        sleep $POLL_SLEEP
    done
    t1=$EPOCHREALTIME
    # When the later container actually started (the runtime's startedAt), free of the poll.
    last=$(crictl_at "$sock" ps -q --label "io.kubernetes.pod.namespace=$ns" |
        xargs "$KIT/bin/crictl" --runtime-endpoint "unix://$sock" inspect | jq -rs 'map(.status.startedAt) | max')
    started=$(date -d "$last" +%s.%N)
    awk -v a="$t0" -v b="$t1" -v s="$started" -v p="$polls" -v i="$i" -v rt="$rt" \
        'BEGIN { printf "%s,%d,%.3f,%.3f,%d,%.1f\n", rt, i, s - a, b - a, p, (b - a) * 1000 / p }' >>"$CSV"
    log "$(tail -1 "$CSV")"
    rm "$MANIFESTS/web.yaml"
    t0=$EPOCHREALTIME
    while [ -n "$(crictl_at "$sock" pods -q --namespace "$ns")" ]; do
        awk -v a="$t0" -v b="$EPOCHREALTIME" -v t=$REMOVE_TIMEOUT 'BEGIN { exit !(b - a > t) }' &&
            die "$rt iteration $i: sandbox not removed after ${REMOVE_TIMEOUT}s"
        sleep 0.5
    done
}

done_count() { awk -F, -v rt="$1" 'NR > 1 && $1 == rt { n++ } END { print n + 0 }' "$CSV"; }
order="$RUNTIMES"
while :; do
    left=0
    for rt in $order; do
        have=$(done_count "$rt")
        [ "$have" -lt "$ITER" ] || continue
        left=1
        last=$((have + BLOCK < ITER ? have + BLOCK : ITER))
        "$KIT/kubelet-standalone.sh" start "$(sock_of "$rt")" "$MANIFESTS" >&2
        KUBELET_STARTED=1
        # The kubelet's first sync (node status, image and container GC, cgroups) is not
        # part of a pod's start.
        sleep 5
        for i in $(seq $((have + 1)) "$last"); do
            iteration "$rt" "$i"
        done
        "$KIT/kubelet-standalone.sh" stop >&2
        KUBELET_STARTED=""
    done
    [ "$left" = 1 ] || break
    # The other runtime goes first in the next block.
    order="$(echo "$order" | awk '{ for (i = NF; i > 0; i--) printf "%s ", $i }')"
done

stats() {
    awk -F, -v rt="$1" 'NR > 1 && $1 == rt' "$CSV" | cut -d, -f"$2" | sort -n | awk -v what="$1: $3" '
        { v[NR] = $1; s += $1 }
        END { if (NR) printf "%s: n=%d min=%.3f median=%.3f mean=%.3f max=%.3f s\n", what,
              NR, v[1], (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), s / NR, v[NR] }'
}
for rt in $RUNTIMES; do
    stats "$rt" 3 "manifest -> later container started (startedAt)"
    stats "$rt" 4 "manifest -> both Running seen by crictl ps"
done
awk -F, 'NR > 1 { p += $6; n++ } END { printf "poll period (crictl call + sleep): %.1f ms\n", p / n }' "$CSV"
