#!/usr/bin/env bash
# critest (the CRI validation suite, v1.29) against a podhost daemon: issue 13's acceptance.
#
# Starts the test kit's loopback registry (../shared/cri-testkit, beside the repository),
# a podhost daemon under a temporary --root whose registries.json sends registry.k8s.io,
# gcr.io, k8s.gcr.io and docker.io to that registry only (mirrorsOnly), runs critest on the
# daemon's CRI socket, and stops everything. Passes when at least $CRITEST_MIN_PASSED (77)
# specs passed and nothing failed but `public image with digest` (a local registry cannot
# serve upstream's pinned digest; containerd fails it here too).
#
# usage: scripts/critest.sh [critest/ginkgo flags...]   e.g. --ginkgo.focus=Streaming
# env:   PODHOST_BIN_DIR   podhost binaries (default $CARGO_TARGET_DIR/debug or target/debug)
#        CRI_TESTKIT       the kit (default ../shared/cri-testkit from the repository root,
#                          else shared/cri-testkit in an ancestor directory)
#        CRITEST_REGISTRY_PORT (default 5055), CRITEST_REGISTRY_STATE (its data, default
#        /var/tmp/podhost-critest-registry: images are made once, 1-2 minutes)
#        CRITEST_MIN_PASSED (default 77)
#        CRITEST_KNOWN_FAILURES  an extended regex of failure lines tolerated for the exit
#                          status (features not built yet); they are listed, and the run
#                          is then reported as not meeting issue 13's acceptance
# Needs (apt): docker-registry umoci skopeo gcc libc6-dev curl python3; root.
set -euo pipefail

REPO="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
cd "$REPO"
KIT="${CRI_TESTKIT:-../shared/cri-testkit}"
# A worktree deeper down (…/wt/NAME): the kit is beside an ancestor.
if [ -z "${CRI_TESTKIT:-}" ] && [ ! -d "$KIT" ]; then
    d="$REPO"
    while [ "$d" != / ] && [ ! -d "$d/shared/cri-testkit" ]; do d="$(dirname "$d")"; done
    [ -d "$d/shared/cri-testkit" ] && KIT="$d/shared/cri-testkit"
fi
BIN="${PODHOST_BIN_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/debug}"
PORT="${CRITEST_REGISTRY_PORT:-5055}"
MIN_PASSED="${CRITEST_MIN_PASSED:-77}"
KNOWN="${CRITEST_KNOWN_FAILURES:-}"
# The only failure allowed: the spec pulling upstream's image by its pinned digest.
ALLOWED_FAILURE='public image with digest'
export STATE="${CRITEST_REGISTRY_STATE:-/var/tmp/podhost-critest-registry}"
export OUT="${OUT:-/var/tmp/podhost-critest-logs}"

die() { printf 'critest.sh: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"
[ -x "$KIT/bin/critest" ] || die "no CRI test kit at $KIT (expected beside the repository)"
[ -x "$BIN/podhost" ] || die "no $BIN/podhost: cargo build --workspace --bins first"
KIT="$(cd "$KIT" && pwd)"

START=$(date +%s)
ROOT="$(mktemp -d /tmp/podhost-critest.XXXXXX)"
SOCK="$ROOT/run/cri.sock"
CRICTL=("$KIT/bin/crictl" --runtime-endpoint "unix://$SOCK" --image-endpoint "unix://$SOCK" --timeout 60s)
DAEMON=""
REGISTRY_STARTED=""

cleanup() {
    local rc=$?
    set +e
    if [ -n "$DAEMON" ] && kill -0 "$DAEMON" 2>/dev/null; then
        # What a failed spec left behind: critest removes its own sandboxes otherwise.
        "${CRICTL[@]}" rmp --all --force >/dev/null 2>&1
        kill -TERM "$DAEMON"
        for _ in $(seq 100); do kill -0 "$DAEMON" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DAEMON" 2>/dev/null
    fi
    [ -n "$REGISTRY_STARTED" ] && "$KIT/registry.sh" stop >/dev/null
    # The daemon's root: no mount of it may remain before it is removed.
    grep -F " $ROOT/" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    rm -rf "$ROOT"
    exit $rc
}
trap cleanup EXIT INT TERM

echo "==> registry on 127.0.0.1:$PORT (data in $STATE)"
"$KIT/registry.sh" start "$PORT"
REGISTRY_STARTED=1

mirror="\"mirrors\": [\"127.0.0.1:$PORT\"], \"mirrorsOnly\": true"
cat > "$ROOT/registries.json" <<EOF
{"registries": {
  "registry.k8s.io": {$mirror},
  "gcr.io": {$mirror},
  "k8s.gcr.io": {$mirror},
  "docker.io": {$mirror}
}}
EOF

echo "==> podhost daemon under $ROOT"
# Image GC off: critest's pulls must stay while it checks them, whatever the disk holds.
"$BIN/podhost" --root "$ROOT" serve --image-gc-high-threshold 100 > "$ROOT/daemon.log" 2>&1 &
DAEMON=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { cat "$ROOT/daemon.log" >&2; die "the daemon did not open $SOCK"; }

echo "==> critest $*"
set +e
"$KIT/critest.sh" "$SOCK" "$@" | tee "$ROOT/summary.txt"
set -e
mkdir -p "$OUT" && cp "$ROOT/daemon.log" "$OUT/podhost-daemon-$(date +%Y%m%d-%H%M%S).log"

total=$(grep '^TOTAL' "$ROOT/summary.txt" || true)
passed=$(sed -n 's/.*passed=\([0-9]*\).*/\1/p' <<< "$total")
passed=${passed:-0}
failures=$(grep '^FAILED:' "$ROOT/summary.txt" | grep -vF "$ALLOWED_FAILURE" || true)
known=""
unexpected="$failures"
if [ -n "$KNOWN" ] && [ -n "$failures" ]; then
    known=$(grep -E "$KNOWN" <<< "$failures" || true)
    unexpected=$(grep -vE "$KNOWN" <<< "$failures" || true)
fi
echo "==> critest: ${total:-no result}; wall time $(( $(date +%s) - START )) s (registry and daemon included)"
if [ -n "$unexpected" ]; then
    echo "==> failures other than '$ALLOWED_FAILURE':" >&2
    echo "$unexpected" >&2
    exit 1
fi
# A focused run (critest flags given) is judged by its failures only.
if [ $# -eq 0 ] && [ "$passed" -lt "$MIN_PASSED" ]; then
    die "only $passed specs passed (at least $MIN_PASSED expected)"
fi
if [ -n "$known" ]; then
    echo "==> known failures (CRITEST_KNOWN_FAILURES), not accepted:"
    echo "$known"
    echo "==> critest: $passed passed; issue 13's acceptance (77, nothing failing but '$ALLOWED_FAILURE') is NOT met yet"
    exit 0
fi
echo "==> critest accepted: $passed passed, no failure but '$ALLOWED_FAILURE'"
