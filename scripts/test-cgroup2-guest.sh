#!/usr/bin/env bash
# Run the end-to-end tests that touch cgroups and pods inside a cgroup-v2-only guest
# (Debian 12 under QEMU, scripts/cgroup2-guest/): most hosts run cgroup v2, this kind of
# CI machine runs v1 hybrid. The test binaries and podhost's binaries are built here
# (debug, as `cargo test`), stripped of debug info and shared with the guest at /host.
# Exit code: the guest's (1 when a test failed), 125 when the guest did not finish.
#
# Usage (root): scripts/test-cgroup2-guest.sh
#   CG2_DIR    guest image dir (default /var/tmp/cgroup2-guest); built once, rebuilt when
#              scripts/cgroup2-guest/build.sh changes
#   CG2_TESTS  test list instead of the default one below (NAME TIMEOUT [libtest args] lines)
#   TIMEOUT    limit of the whole guest run in seconds (default 1800)
#   TIME_SCALE factor for the tests' own time limits in the guest (PODHOST_E2E_TIME_SCALE,
#              default 5)
set -euo pipefail
REPO="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
cd "$REPO"
GUEST="$REPO/scripts/cgroup2-guest"
export CG2_DIR="${CG2_DIR:-/var/tmp/cgroup2-guest}"

# What runs in the guest, with a time limit per binary (the guest runs 3-10x slower than
# the host under software emulation). Of e2e_crash, the tests whose recovery goes through
# the pod cgroups: orphans of a killed or stopped shim found and killed through them, a
# reboot, the start-time GC of stale pod cgroups (the others test timing and logs, not
# cgroups, and the chaos test takes minutes on the host).
# CI has 45 minutes for everything: the guest runs the cgroup tests, and of the pod and
# lifecycle tests those that go through cgroups (shared namespaces, restarts, init
# containers and sidecars, an exec probe joining the container's cgroup); the rest
# (HTTP/gRPC probes, hooks, timing) is left to a run by hand: CG2_TESTS='e2e_lifecycle 900'.
DEFAULT_TESTS="e2e_resources 900
e2e_pods 600 web_sidecar killed_container_restarts shared_pid
e2e_lifecycle 600 init_containers sidecar_outlives failing_liveness
e2e_crash 600 killed_shim stopped_shim reboot stale_pod_cgroup"
TESTS="${CG2_TESTS:-$DEFAULT_TESTS}"
TIME_SCALE="${TIME_SCALE:-5}"

die() { printf 'test-cgroup2-guest.sh: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"

# The guest image, built once per version of build.sh.
stamp="$(sha256sum "$GUEST/build.sh" | cut -c1-16)"
if [ ! -f "$CG2_DIR/rootfs.img" ] || [ "$(cat "$CG2_DIR/.build-stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "building the guest image in $CG2_DIR (debootstrap from the Debian mirror)"
    bash "$GUEST/build.sh"
    echo "$stamp" >"$CG2_DIR/.build-stamp"
fi

# Binaries: cargo reports where the test binaries are; `podhost` and its helpers sit in
# the target's debug dir, which is also the path compiled into the tests.
cargo build --workspace --bins
names=()
args=()
while read -r name _; do
    [ -n "$name" ] || continue
    names+=("$name")
    args+=(--test "$name")
done <<<"$TESTS"
exes="$(cargo test -p podhost --no-run "${args[@]}" --message-format=json |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')"
target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
[ -n "$target" ] || die "cargo metadata gave no target directory"

SHARE="$(mktemp -d "${TMPDIR:-/var/tmp}/podhost-cg2-share.XXXXXX")"
trap 'rm -rf "$SHARE"' EXIT
mkdir -p "$SHARE/bin" "$SHARE/tests" "$SHARE/repo/scripts"
for b in podhost podhost-shim podhost-runc pause; do
    objcopy --strip-debug "$target/debug/$b" "$SHARE/bin/$b"
done
for name in "${names[@]}"; do
    exe="$(grep -m 1 "/$name-[0-9a-f]*$" <<<"$exes" || true)"
    [ -n "$exe" ] || die "no test binary for $name"
    objcopy --strip-debug "$exe" "$SHARE/tests/$name"
done
cp scripts/make-busybox-image.sh "$SHARE/repo/scripts/"
cp -r examples "$SHARE/repo/"
cp "$GUEST/guest-tests.sh" "$SHARE/"
printf 'DEBUG_DIR=%q\nREPO=%q\nTIME_SCALE=%q\n' "$target/debug" "$REPO" "$TIME_SCALE" >"$SHARE/paths"
printf '%s\n' "$TESTS" >"$SHARE/tests.list"
echo "share: $(du -sh "$SHARE" | cut -f1) in $SHARE; guest tests:"
sed 's/^/  /' <<<"$TESTS"

start=$(date +%s)
rc=0
TIMEOUT="${TIMEOUT:-1800}" SHARE="$SHARE" bash "$GUEST/run-in-guest.sh" "bash /host/guest-tests.sh" || rc=$?
echo "cgroup v2 guest: exit code $rc after $(($(date +%s) - start)) s (boot included)"
exit "$rc"
