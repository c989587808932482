#!/bin/bash
# Runs inside the cgroup-v2 guest (scripts/test-cgroup2-guest.sh puts it in the share at
# /host): installs the binaries at the paths the test binaries were built with, runs each
# test binary of /host/tests.list and prints a summary. Exit code 1 if any test failed.
set -u
# DEBUG_DIR: where `podhost` and its helpers were built (CARGO_BIN_EXE_podhost's dir);
# REPO: the checkout the tests were built from (CARGO_MANIFEST_DIR/../..: scripts, examples);
# TIME_SCALE: factor for the tests' time limits.
. /host/paths
# The tests name files as $REPO/crates/podhost/../../scripts/…: that directory must exist.
mkdir -p "$DEBUG_DIR" "$REPO/crates/podhost" /root/tests
cp /host/bin/* "$DEBUG_DIR/"
cp -r /host/repo/. "$REPO/"
cp /host/tests/* /root/tests/
echo "guest: kernel $(uname -r), /sys/fs/cgroup is $(stat -fc %T /sys/fs/cgroup)," \
    "controllers: $(cat /sys/fs/cgroup/cgroup.controllers), $(nproc) CPUs"
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || { echo "not a cgroup v2 guest" >&2; exit 1; }

# Software emulation: the tests' time limits are stretched (TIME_SCALE, from /host/paths),
# and the busybox image is made once here, with the guest's busybox-static and the
# harness's own script, instead of once per test binary.
export PODHOST_E2E_TIME_SCALE="$TIME_SCALE"
export PODHOST_E2E_BUSYBOX_TAR=/root/busybox.tar
# The CRI test kit, when the host shared it (for e2e_kubelet and e2e_cri).
[ ! -x /host/kit/bin/crictl ] || export CRICTL=/host/kit/bin/crictl
bash "$REPO/scripts/make-busybox-image.sh" "$PODHOST_E2E_BUSYBOX_TAR" || exit 1

# A heartbeat on the serial console ($CG2_DIR/console.log on the host), which does not
# depend on the share: shows a slow or stuck guest and what it is doing.
(while sleep 120; do
    echo "[heartbeat $(cut -d' ' -f1 /proc/uptime)s, load $(cut -d' ' -f1-3 /proc/loadavg)]"
    ps -eo pid,stat,etime,time,args --sort=-time | head -n 8 | cut -c1-150
done >/dev/ttyS0 2>&1) &
heartbeat=$!

failed=0
summary=()
# tests.list: one test binary a line: NAME TIMEOUT_SECONDS [libtest arguments…]
while read -r name limit args; do
    [ -n "$name" ] || continue
    echo "==> $name $args (time limit ${limit}s)"
    start=$(date +%s)
    # shellcheck disable=SC2086 # the arguments are words
    timeout -k 10 "$limit" "/root/tests/$name" $args 2>&1 | tee "/tmp/$name.log"
    rc=${PIPESTATUS[0]}
    took=$(($(date +%s) - start))
    result=$(grep '^test result:' "/tmp/$name.log" | tail -n 1)
    [ "$rc" -eq 124 ] && result="TIMED OUT after ${limit}s"
    summary+=("$name: ${result:-no result} (exit $rc, ${took}s)")
    [ "$rc" -eq 0 ] || failed=1
    # A test that failed may leave cgroups behind: list them for the record.
    left=$(find /sys/fs/cgroup -maxdepth 1 -name 'podhost-e2e-*' 2>/dev/null)
    [ -z "$left" ] || echo "cgroups left after $name: $left"
done < /host/tests.list

kill "$heartbeat" 2>/dev/null
echo
echo "==> cgroup v2 guest summary"
printf '  %s\n' "${summary[@]}"
exit "$failed"
