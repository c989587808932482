#!/usr/bin/env bash
# Remove what end-to-end test environments left behind when their test process was
# killed (SIGKILL, a CI timeout, a stopped session): their Drop guard never ran. A test
# environment is /tmp/podhost-e2e-<pid>-<suffix>; it is stale when process <pid> (the
# test binary) is gone. For each stale one: kill its processes (daemon, shims, pods:
# found by its cgroups and by command lines naming its root), unmount everything below
# it, remove its cgroups, its bridge and the iptables rules of its network, then the
# directory. Environments of running tests are never touched.
#
# Usage (root): scripts/clean-stale-e2e.sh [-n]     -n: only list what is stale
set -euo pipefail
dry=0
[ "${1:-}" = -n ] && dry=1
[ "$(id -u)" -eq 0 ] || { echo "clean-stale-e2e.sh: must run as root" >&2; exit 1; }

cgroup_dirs() { # every cgroup directory of environment TAG, deepest first
    find /sys/fs/cgroup -maxdepth 3 -type d -name "podhost-e2e-$1" 2>/dev/null |
        while read -r top; do find "$top" -depth -type d; done
}

for root in /tmp/podhost-e2e-*; do
    [ -d "$root" ] || continue
    tag="${root#/tmp/podhost-e2e-}"
    owner="${tag#image-}"
    owner="${owner%%-*}"
    case "$owner" in '' | *[!0-9]*) continue ;; esac
    if [ -d "/proc/$owner" ]; then
        continue
    fi
    echo "stale: $root"
    [ "$dry" = 1 ] && continue
    # podhost-e2e-image-<pid> is a test binary's busybox image: files only.
    if [ "${tag#image-}" = "$tag" ]; then
        # Processes: pods in its cgroups, then the daemon and shims naming its root.
        for _ in 1 2 3; do
            pids="$(cgroup_dirs "$tag" | while read -r d; do cat "$d/cgroup.procs" 2>/dev/null; done)"
            pids="$pids $(pgrep -f -- "$root/" || true)"
            # The daemon gets its root in the environment (PODHOST_ROOT).
            pids="$pids $(grep -lxzF "PODHOST_ROOT=$root" /proc/[0-9]*/environ 2>/dev/null |
                cut -d/ -f3 || true)"
            # shellcheck disable=SC2086 # a list of pids
            [ -n "${pids// /}" ] && kill -9 $pids 2>/dev/null || true
            sleep 0.2
        done
        # Mounts below the root, deepest first (netns pins, overlays, the run tmpfs).
        awk -v r="$root/" 'index($2, r) == 1 || $2 == substr(r, 1, length(r) - 1) { print $2 }' /proc/mounts |
            awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2- |
            while read -r m; do umount -l "$m" 2>/dev/null || true; done || true
        cgroup_dirs "$tag" | while read -r d; do rmdir "$d" 2>/dev/null || true; done || true
        # Its network: the bridge named in its conflist, and the rules tagged with it.
        bridge="$(sed -n 's/.*"bridge": *"\([^"]*\)".*/\1/p' "$root"/cni/net.d/*.conflist 2>/dev/null | head -n 1)"
        if [ -n "$bridge" ]; then
            ip link del "$bridge" 2>/dev/null || true
            # The per-pod chains its rules are in or jump to (CNI-<24 hex>).
            chains="$(iptables-save -t nat | grep -F "name: \\\"$bridge\\\"" |
                grep -o 'CNI-[0-9a-f]\{24\}' | sort -u || true)"
            for table in nat filter; do
                iptables-save -t "$table" | grep -F "name: \\\"$bridge\\\"" | grep '^-A' |
                    while read -r _ rule; do
                        eval "iptables -w -t $table -D $rule" 2>/dev/null || true
                    done || true
            done
            for chain in $chains; do
                iptables -w -t nat -F "$chain" 2>/dev/null || true
                iptables -w -t nat -X "$chain" 2>/dev/null || true
            done
        fi
    fi
    rm -rf --one-file-system "$root" 2>/dev/null || echo "  could not remove all of $root"
done
