#!/usr/bin/env bash
# podhost network benchmark: time of one pod's network setup (netns created and
# pinned, CNI ADD of the default conflist: bridge + host-local, portmap, loopback)
# and teardown (CNI DEL with the stored result, unpin), median of many cycles,
# without and with a hostPort. Cycles alternate between a podhost pod (the default
# list without loopback, and without portmap when no port is published) and a
# kubelet's pod (every plugin of the list, as every pod got before). Release build; private bridge, /24 and dirs,
# removed at the end.
#
# Usage: sudo bench/net.sh [-n N]     (default N=200)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
N=200
[ "${1:-}" = "-n" ] && N="${2:?-n needs a number}"
cargo build --release -q -p podhost-runtime --example netbench
BIN="${CARGO_TARGET_DIR:-target}/release/examples/netbench"
echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores, containernetworking-plugins $(dpkg-query -W -f="\${Version}" containernetworking-plugins 2>/dev/null)"
"$BIN" -n "$N"
"$BIN" -n "$N" --host-port
