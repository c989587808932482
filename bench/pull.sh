#!/usr/bin/env bash
# Pull + unpack benchmark: podhost against `skopeo copy` + `umoci unpack`, from
# the same local registry (Debian's docker-registry on 127.0.0.1, free port).
#
# Usage: sudo bench/pull.sh [-l LAYERS] [-s MIB_PER_LAYER] [-n RUNS] [--no-build]
#   -l LAYERS   layers of the synthetic image (default 4)
#   -s MIB      MiB of content per layer before compression (default 64)
#   -n RUNS     cold pulls per tool (default 3); the median is reported
#   --no-build  use target/release/podhost as it is
#
# The image is synthetic (debootstrap is not used: it needs a reachable Debian
# mirror): each layer holds files of random bytes (incompressible, like
# binaries and compressed assets) and of repeated text (compressible), half
# and half, gzip-compressed as registries serve them. Every run starts from an
# empty store / destination; page cache is not dropped (both tools see the
# same warm registry files).
set -euo pipefail

LAYERS=4
MIB=64
RUNS=3
BUILD=1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

while [ $# -gt 0 ]; do
    case "$1" in
        -l) LAYERS="$2"; shift 2 ;;
        -s) MIB="$2"; shift 2 ;;
        -n) RUNS="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "pull.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

for tool in docker-registry skopeo umoci tar gzip sha256sum; do
    command -v "$tool" >/dev/null || { echo "pull.sh: $tool missing (apt-get install docker-registry skopeo umoci)" >&2; exit 1; }
done
if [ "$BUILD" = 1 ]; then
    (cd "$REPO" && cargo build --release --workspace --bins)
fi
PODHOST="$REPO/target/release/podhost"

WORK="$(mktemp -d /tmp/podhost-pullbench.XXXXXX)"
REG_PID=""
DAEMON_PID=""
cleanup() {
    [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null || true
    [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
ADDR="127.0.0.1:$PORT"
mkdir -p "$WORK/registry"
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/registry}}
http: {addr: $ADDR}
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

echo "building a synthetic image: $LAYERS layers x $MIB MiB" >&2
OCI="$WORK/oci"
mkdir -p "$OCI/blobs/sha256"
layers_json=""
diff_ids=""
for i in $(seq 1 "$LAYERS"); do
    root="$WORK/layer$i"
    mkdir -p "$root/data$i"
    half=$((MIB / 2))
    for f in $(seq 1 "$half"); do
        head -c 1048576 /dev/urandom >"$root/data$i/random$f.bin"
    done
    (yes "podhost layer $i compressible line of text for the benchmark" || true) | head -c $((half * 1048576)) >"$root/data$i/text.txt"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$WORK/layer$i.tar" .
    diff_id="$(sha256sum "$WORK/layer$i.tar" | cut -d' ' -f1)"
    gzip -1 -n -c "$WORK/layer$i.tar" >"$WORK/layer$i.tgz"
    hex="$(sha256sum "$WORK/layer$i.tgz" | cut -d' ' -f1)"
    size="$(stat -c %s "$WORK/layer$i.tgz")"
    mv "$WORK/layer$i.tgz" "$OCI/blobs/sha256/$hex"
    rm -rf "$root" "$WORK/layer$i.tar"
    layers_json="$layers_json${layers_json:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$hex\",\"size\":$size}"
    diff_ids="$diff_ids${diff_ids:+,}\"sha256:$diff_id\""
done
config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"/bin/sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$diff_ids]}}"
printf '%s' "$config" >"$WORK/config.json"
chex="$(sha256sum "$WORK/config.json" | cut -d' ' -f1)"
cp "$WORK/config.json" "$OCI/blobs/sha256/$chex"
manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$chex\",\"size\":$(stat -c %s "$WORK/config.json")},\"layers\":[$layers_json]}"
printf '%s' "$manifest" >"$WORK/manifest.json"
mhex="$(sha256sum "$WORK/manifest.json" | cut -d' ' -f1)"
cp "$WORK/manifest.json" "$OCI/blobs/sha256/$mhex"
printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$OCI/oci-layout"
printf '%s' "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$mhex\",\"size\":$(stat -c %s "$WORK/manifest.json"),\"annotations\":{\"org.opencontainers.image.ref.name\":\"bench\"}}]}" >"$OCI/index.json"
COMPRESSED="$(du -cb "$OCI"/blobs/sha256/* | tail -1 | cut -f1)"
skopeo copy --quiet --dest-tls-verify=false "oci:$OCI:bench" "docker://$ADDR/bench/image:1"
rm -rf "$OCI"
REF="$ADDR/bench/image:1"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "podhost pull (cold, $RUNS runs)" >&2
podhost_times=()
for r in $(seq 1 "$RUNS"); do
    root="$WORK/podhost-$r"
    mkdir -p "$root"
    PODHOST_ROOT="$root" PODHOST_IMAGE_GC_HIGH_THRESHOLD=100 "$PODHOST" serve >"$root.log" 2>&1 &
    DAEMON_PID=$!
    for _ in $(seq 1 100); do PODHOST_ROOT="$root" "$PODHOST" images >/dev/null 2>&1 && break; sleep 0.1; done
    t0="$(now)"
    PODHOST_ROOT="$root" "$PODHOST" pull "$REF" >/dev/null
    t1="$(now)"
    podhost_times+=("$(echo "$t1 - $t0" | bc)")
    kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=""
    rm -rf "$root"
done

echo "skopeo copy + umoci unpack (cold, $RUNS runs)" >&2
skopeo_times=()
umoci_times=()
for r in $(seq 1 "$RUNS"); do
    d="$WORK/skopeo-$r"
    mkdir -p "$d"
    t0="$(now)"
    skopeo copy --quiet --src-tls-verify=false "docker://$REF" "oci:$d/oci:bench"
    t1="$(now)"
    umoci unpack --image "$d/oci:bench" "$d/bundle" >/dev/null
    t2="$(now)"
    skopeo_times+=("$(echo "$t1 - $t0" | bc)")
    umoci_times+=("$(echo "$t2 - $t1" | bc)")
    rm -rf "$d"
done

p="$(printf '%s\n' "${podhost_times[@]}" | median)"
s="$(printf '%s\n' "${skopeo_times[@]}" | median)"
u="$(printf '%s\n' "${umoci_times[@]}" | median)"
su="$(echo "$s + $u" | bc)"
p="$(printf '%.2f' "$p")"; s="$(printf '%.2f' "$s")"; u="$(printf '%.2f' "$u")"; su="$(printf '%.2f' "$su")"
mb="$(echo "scale=1; $COMPRESSED / 1048576" | bc)"
umb="$(echo "scale=1; $LAYERS * $MIB" | bc)"
cat <<EOF
image: $LAYERS layers, ${umb} MiB uncompressed, ${mb} MiB compressed (gzip -1), registry on $ADDR
| tool | median of $RUNS cold pulls | throughput (compressed MiB/s) |
|---|---|---|
| podhost pull (download + verify + unpack) | ${p} s | $(echo "scale=1; $mb / $p" | bc) |
| skopeo copy (download only) | ${s} s | $(echo "scale=1; $mb / $s" | bc) |
| umoci unpack (unpack only) | ${u} s | |
| skopeo copy + umoci unpack | ${su} s | $(echo "scale=1; $mb / $su" | bc) |
runs (s): podhost ${podhost_times[*]}; skopeo ${skopeo_times[*]}; umoci ${umoci_times[*]}
EOF
