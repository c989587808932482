# Shared by bench/startup.sh and bench/density.sh (sourced): a podhost daemon of the
# release build under a temporary root, cgroup parent and bridge of its own, the
# busybox image loaded, and everything removed on exit.
#
# The caller sets REPO, CGROUP_PARENT and BUILD (1: cargo build first), and may set
# SERVE_ARGS (extra `podhost serve` arguments), then calls bench_start.

# PODHOST_BENCH_BIN: another directory of release binaries (an older build, to compare).
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="${PODHOST_BENCH_BIN:-$TARGET/release}"
PH="$BIN/podhost"
ROOT=""
DAEMON_PID=""
BRIDGE="phb$$"
SERVE_ARGS=("${SERVE_ARGS[@]}")

die() { echo "bench: ERROR: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }
ph() { "$PH" --root "$ROOT" "$@"; }

bench_cleanup() {
    local rc=$?
    set +eu
    trap - EXIT INT TERM
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        bench_delete_all >/dev/null 2>&1
        kill -TERM "$DAEMON_PID"
        for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
    fi
    if [ -n "$ROOT" ] && [ -d "$ROOT" ]; then
        awk -v r="$ROOT" 'index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null; done
        rm -rf --one-file-system "$ROOT"
    fi
    ip link del "$BRIDGE" 2>/dev/null
    local c
    for c in /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/unified/"$CGROUP_PARENT"; do
        [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    exit "$rc"
}

# The options both scripts take: -n N, -o DIR, --no-build (sets N, OUT, BUILD).
bench_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            -n) [ $# -ge 2 ] || usage; N="$2"; shift 2 ;;
            -o) [ $# -ge 2 ] || usage; OUT="$2"; shift 2 ;;
            --no-build) BUILD=0; shift ;;
            -h|--help) usage ;;
            *) echo "bench: unknown argument $1" >&2; usage ;;
        esac
    done
    [[ "$N" =~ ^[1-9][0-9]*$ ]] || die "-n needs a positive integer"
}

# Delete every pod (grace 0) in one `delete` and wait until they are gone.
bench_delete_all() {
    local names
    names="$(ph get pods -o name | sed 's|^pod/||')"
    [ -z "$names" ] && return 0
    # shellcheck disable=SC2086 # one argument per pod name
    timeout 600 "$PH" --root "$ROOT" delete pod --force $names
}

# Build if asked, start the daemon, load busybox.
bench_start() {
    [ "$(id -u)" -eq 0 ] || die "run as root: pods need namespaces, mounts and cgroups"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    if [ "$BUILD" = 1 ]; then
        (cd "$REPO" && cargo build --release --workspace --bins) >&2 || die "cargo build failed"
    fi
    local b
    for b in podhost podhost-shim podhost-runc pause; do
        [ -x "$BIN/$b" ] || die "$BIN/$b missing (cargo build --release --workspace --bins)"
    done
    ROOT="$(mktemp -d /tmp/phb.XXXX)"
    PODHOST_CGROUP_PARENT="$CGROUP_PARENT" PODHOST_CNI_BRIDGE="$BRIDGE" \
        PODHOST_CLUSTER_CIDR="${BENCH_CLUSTER_CIDR:-10.251.$(( $$ % 250 )).0/24}" \
        "$PH" --root "$ROOT" serve --no-cri "${SERVE_ARGS[@]}" </dev/null >"$ROOT/daemon.log" 2>&1 &
    DAEMON_PID=$!
    for _ in $(seq 400); do ph get pods >/dev/null 2>&1 && break; sleep 0.05; done
    ph get pods >/dev/null 2>&1 || { tail -20 "$ROOT/daemon.log" >&2; die "daemon did not come up"; }
    bash "$REPO/scripts/make-busybox-image.sh" "$ROOT/busybox.tar" >/dev/null || die "make-busybox-image.sh failed"
    ph image load -i "$ROOT/busybox.tar" >/dev/null || die "image load failed"
}

# The web + sidecar example renamed NAME, on stdout.
bench_pod() { sed "s/^  name: web-sidecar\$/  name: $1/" "$REPO/examples/web-sidecar.yaml"; }

# Both containers of pod NAME running. One jsonpath answer and no jq: the poll's own
# cost (a jq start ~15 ms, bash matching through a whole Pod JSON ~10 ms) is part of
# every start time measured with it.
bench_running() {
    local s
    s="$(ph get pod "$1" -o jsonpath='{.status.containerStatuses[*].state.running.startedAt}' 2>/dev/null)" || return 1
    # shellcheck disable=SC2086 # one word per running container
    set -- $s
    [ $# -ge 2 ]
}

# numbers on stdin -> "n | median | p90" (nearest rank)
bench_stats() {
    sort -g | awk '{ v[++n] = $1 } END {
        if (n == 0) { print "0 | - | -"; exit }
        p = int(0.9 * n); if (p < 0.9 * n) p++
        m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        printf "%d | %.2f | %.2f\n", n, m, v[p] }'
}

# Wall clock in ms (bash's $EPOCHREALTIME, no fork).
bench_now_ms() { local t="${EPOCHREALTIME/[.,]/}"; echo $(( t / 1000 )); }
