#!/usr/bin/env bash
# CRI benchmark: `crictl runp` + `create` + `start` of one busybox container, then
# `stopp` + `rmp`, podhost against containerd 1.6 (Debian's, with runc), both driven by the
# CRI test kit's crictl on their own sockets, rounds alternating between the two.
#
# Usage (root): bench/cri.sh [-n ROUNDS] [--no-build]
#   -n ROUNDS   samples per runtime (default 20)
#   --no-build  use target/release as it is
# Needs: apt packages containerd runc containernetworking-plugins docker-registry umoci
# skopeo curl (installed when missing), the kit at ../shared/cri-testkit.
#
# Both runtimes get their images from the kit's loopback registry (mirrors of
# registry.k8s.io), the same busybox image, a bridge CNI network of their own, the
# cgroupfs driver, and run from temporary roots removed at exit: nothing of an installed
# podhost or containerd is touched. Writes bench/results/cri-<time>.csv and prints medians.
set -euo pipefail
ROUNDS=20
BUILD=1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
while [ $# -gt 0 ]; do
    case "$1" in
        -n) ROUNDS="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) sed -n '2,11p' "$0"; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench/cri.sh: must run as root" >&2; exit 1; }
KIT="$REPO/../shared/cri-testkit"
d="$REPO"
while [ ! -d "$KIT" ] && [ "$d" != / ]; do d="$(dirname "$d")"; KIT="$d/shared/cri-testkit"; done
[ -x "$KIT/bin/crictl" ] || { echo "bench/cri.sh: no CRI test kit beside the repository" >&2; exit 1; }
KIT="$(cd "$KIT" && pwd)"

missing=()
for p in containerd runc containernetworking-plugins docker-registry umoci skopeo curl; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ "$BUILD" = 1 ]; then
    (cd "$REPO" && cargo build --release --workspace --bins -q)
fi
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release"

PORT=5057
W="$(mktemp -d /tmp/podhost-bench-cri.XXXXXX)"
export STATE="$W/registry"
PH_ROOT="$W/podhost"
CTD="$W/containerd"
mkdir -p "$PH_ROOT" "$CTD/net.d" "$W/logs"
PH_SOCK="$PH_ROOT/run/cri.sock"
CTD_SOCK="$CTD/containerd.sock"
PH_PID=""
CTD_PID=""

cleanup() {
    set +e
    for sock in "$PH_SOCK" "$CTD_SOCK"; do
        [ -S "$sock" ] && "$KIT/bin/crictl" --runtime-endpoint "unix://$sock" rmp --all --force >/dev/null 2>&1
    done
    for pid in "$PH_PID" "$CTD_PID"; do
        [ -n "$pid" ] || continue
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    pkill -f "containerd-shim-runc-v2 -namespace k8s.io -address $CTD_SOCK" 2>/dev/null
    "$KIT/registry.sh" stop >/dev/null 2>&1
    grep -F " $W/" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    ip link del phbcri0 2>/dev/null
    ip link del ctdbcri0 2>/dev/null
    [ -n "${KEEP:-}" ] && { echo "kept $W"; return; }
    rm -rf "$W"
}
trap cleanup EXIT INT TERM

echo "==> registry on 127.0.0.1:$PORT (critest's images, made on first start)"
"$KIT/registry.sh" start "$PORT"

# podhost: its own root, registry mirrors only, its default network on a bridge of its own.
cat >"$PH_ROOT/registries.json" <<EOF
{"registries": {"registry.k8s.io": {"mirrors": ["127.0.0.1:$PORT"], "mirrorsOnly": true}}}
EOF
PODHOST_CNI_BRIDGE=phbcri0 PODHOST_CLUSTER_CIDR=10.231.0.0/16 PODHOST_CGROUP_PARENT=podhost-bench-cri \
    "$BIN/podhost" --root "$PH_ROOT" --image-gc-high-threshold 100 serve >"$W/podhost.log" 2>&1 &
PH_PID=$!

# containerd: its own root, state and socket; the CRI plugin on the same kind of network.
cat >"$CTD/net.d/10-bench.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "ctdbench", "plugins": [
  {"type": "bridge", "bridge": "ctdbcri0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.232.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$CTD/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}]}
EOF
cat >"$CTD/config.toml" <<EOF
version = 2
root = "$CTD/root"
state = "$CTD/state"
[grpc]
  address = "$CTD_SOCK"
[ttrpc]
  address = "$CTD_SOCK.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CTD/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.k8s.io"]
    endpoint = ["http://127.0.0.1:$PORT"]
EOF
containerd --config "$CTD/config.toml" >"$W/containerd.log" 2>&1 &
CTD_PID=$!

for sock in "$PH_SOCK" "$CTD_SOCK"; do
    for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.1; done
    [ -S "$sock" ] || { tail -20 "$W"/*.log >&2; echo "bench/cri.sh: no socket $sock" >&2; exit 1; }
done

IMAGE=registry.k8s.io/e2e-test-images/busybox:1.29-2
crictl() { local sock="$1"; shift; "$KIT/bin/crictl" --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" --timeout 60s "$@"; }
for sock in "$PH_SOCK" "$CTD_SOCK"; do
    crictl "$sock" pull "$IMAGE" >/dev/null
done

now_ms() { date +%s%3N; }
# One round on one runtime: prints "runp_ms,start_ms,remove_ms" (start: runp+create+start).
round() {
    local name="$1" sock="$2" n="$3" t0 t1 t2 t3 pod ctr
    cat >"$W/pod-$name-$n.json" <<EOF
{"metadata": {"name": "bench-$n", "namespace": "default", "uid": "bench-$name-$n", "attempt": 0},
 "log_directory": "$W/logs/$name-$n", "linux": {}}
EOF
    cat >"$W/ctr-$name-$n.json" <<EOF
{"metadata": {"name": "c"}, "image": {"image": "$IMAGE"}, "command": ["sleep", "3600"],
 "log_path": "c.log", "linux": {}}
EOF
    # A failed step fails the round (command substitutions do not inherit set -e).
    t0=$(now_ms)
    pod=$(crictl "$sock" runp "$W/pod-$name-$n.json") && [ -n "$pod" ] || return 1
    t1=$(now_ms)
    ctr=$(crictl "$sock" create "$pod" "$W/ctr-$name-$n.json" "$W/pod-$name-$n.json") &&
        [ -n "$ctr" ] || return 1
    crictl "$sock" start "$ctr" >/dev/null || return 1
    t2=$(now_ms)
    crictl "$sock" stopp "$pod" >/dev/null || return 1
    crictl "$sock" rmp "$pod" >/dev/null || return 1
    t3=$(now_ms)
    echo "$((t1 - t0)),$((t2 - t0)),$((t3 - t2))"
}

# A warm-up round each (containerd pulls its pause image at the first runp).
round podhost "$PH_SOCK" warm >/dev/null
RUNTIMES="podhost containerd"
if ! round containerd "$CTD_SOCK" warm >/dev/null 2>"$W/containerd-warm.err"; then
    # Seen here with Debian's runc 1.1.5 on kernel 6.18: "can't get final child's PID
    # from pipe: EOF". Measured alone then, and said so.
    echo "==> containerd cannot run a sandbox on this machine; podhost measured alone:" >&2
    tail -n 1 "$W/containerd-warm.err" >&2
    RUNTIMES="podhost"
fi

mkdir -p "$HERE/results"
CSV="$HERE/results/cri-$(date +%Y%m%d-%H%M%S).csv"
echo "runtime,round,runp_ms,runp_create_start_ms,stopp_rmp_ms" >"$CSV"
for n in $(seq "$ROUNDS"); do
    # Alternate which runtime goes first, so drift in the machine's load hits both alike.
    if [ $((n % 2)) = 1 ]; then order="$RUNTIMES"; else order="$(echo "$RUNTIMES" | awk '{ for (i = NF; i; i--) printf "%s ", $i }')"; fi
    for rt in $order; do
        case "$rt" in podhost) sock="$PH_SOCK" ;; containerd) sock="$CTD_SOCK" ;; esac
        sample="$(round "$rt" "$sock" "$n")" || { echo "bench/cri.sh: $rt round $n failed" >&2; exit 1; }
        echo "$rt,$n,$sample" >>"$CSV"
    done
done

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo "==> $ROUNDS rounds each, medians in ms (samples: $CSV)"
printf '%-12s %8s %22s %14s\n' runtime runp "runp+create+start" "stopp+rmp"
for rt in $RUNTIMES; do
    col() { awk -F, -v rt="$rt" -v c="$1" '$1 == rt { print $c }' "$CSV" | median; }
    printf '%-12s %8s %22s %14s\n' "$rt" "$(col 3)" "$(col 4)" "$(col 5)"
done
