#!/usr/bin/env bash
# Build a one-layer busybox image from the host's static busybox, for tests
# and offline use (podhost never needs a registry to get a first image).
#
# Usage: make-busybox-image.sh OUT.tar [--format oci|docker] [--name REF]
#   --format oci     (default) OCI image layout archive: oci-layout, index.json
#                    (with io.containerd.image.name / org.opencontainers.image.ref.name
#                    annotations) and blobs/sha256/ (gzip layer).
#   --format docker  `docker save`-style archive: manifest.json, <config>.json,
#                    <diff-id>/layer.tar (uncompressed), repositories.
#   --name REF       image reference (default docker.io/library/busybox:latest).
#   --busybox PATH   busybox binary to use (default /bin/busybox).
#
# Output is deterministic for a given busybox binary (fixed mtimes, owners and
# ordering, gzip without name/timestamp), so the image id and digests are stable.
# Needs only bash, coreutils, tar, gzip, sha256sum.
set -euo pipefail

usage() {
    echo "usage: $0 OUT.tar [--format oci|docker] [--name docker.io/library/busybox:latest] [--busybox /bin/busybox]" >&2
    exit 2
}

out=""
format="oci"
name="docker.io/library/busybox:latest"
busybox="/bin/busybox"
while [ $# -gt 0 ]; do
    case "$1" in
        --format) [ $# -ge 2 ] || usage; format="$2"; shift 2 ;;
        --format=*) format="${1#--format=}"; shift ;;
        --name) [ $# -ge 2 ] || usage; name="$2"; shift 2 ;;
        --name=*) name="${1#--name=}"; shift ;;
        --busybox) [ $# -ge 2 ] || usage; busybox="$2"; shift 2 ;;
        --busybox=*) busybox="${1#--busybox=}"; shift ;;
        -h|--help) usage ;;
        -*) echo "$0: unknown option $1" >&2; usage ;;
        *) [ -z "$out" ] || usage; out="$1"; shift ;;
    esac
done
[ -n "$out" ] || usage
case "$format" in oci|docker) ;; *) echo "$0: --format must be oci or docker, not '$format'" >&2; exit 2 ;; esac

if [ ! -x "$busybox" ]; then
    echo "$0: $busybox not found; install it with: apt-get install -y busybox-static" >&2
    exit 1
fi
# A dynamically linked busybox would need the host's libc inside the image.
if command -v ldd >/dev/null 2>&1 && ldd "$busybox" 2>/dev/null | grep -q '=>'; then
    echo "$0: $busybox is dynamically linked; install the static one with: apt-get install -y busybox-static" >&2
    exit 1
fi

# Tag part of the reference, for the OCI ref.name annotation (as containerd and
# docker write it): text after the last ':' unless that ':' belongs to a port.
refname="latest"
last="${name##*/}"
case "$last" in *:*) refname="${last##*:}" ;; esac
case "$name" in *@*) refname="" ;; esac

case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    armv7*|armv6*) arch=arm ;;
    i?86) arch=386 ;;
    *) arch="$(uname -m)" ;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root"/{bin,etc,root,tmp,var/log,usr/bin,usr/sbin,sbin,home,proc,sys,dev}
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] && continue
    ln -s busybox "$root/bin/$applet"
done
# Debian's busybox-static has no printenv applet; the busybox image of Docker Hub has
# one (the Kubernetes docs' examples use it): a shell stand-in with its behaviour.
if [ ! -e "$root/bin/printenv" ]; then
    cat >"$root/bin/printenv" <<'EOF'
#!/bin/sh
[ $# -eq 0 ] && exec env
rc=0
for name in "$@"; do
    case $name in *[!A-Za-z0-9_]*|'') rc=1; continue ;; esac
    if eval "[ -n \"\${$name+x}\" ]"; then eval "printf '%s\\n' \"\$$name\""; else rc=1; fi
done
exit $rc
EOF
    chmod 0755 "$root/bin/printenv"
fi
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
chmod 0644 "$root/etc/passwd" "$root/etc/group"
chmod 0755 "$root" "$root"/{bin,etc,var,var/log,usr,usr/bin,usr/sbin,sbin,home,proc,sys,dev}
chmod 0700 "$root/root"
chmod 1777 "$root/tmp"

# Deterministic tar: sorted names, fixed owner and mtime, no PAX atime/ctime.
det_tar() {
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu "$@"
}

layer_tar="$work/layer.tar"
(cd "$root" && det_tar -cf "$layer_tar" -- *)
diff_id="$(sha256sum "$layer_tar" | cut -d' ' -f1)"

config="$work/config.json"
printf '%s' "{\"architecture\":\"$arch\",\"os\":\"linux\",\"created\":\"1970-01-01T00:00:00Z\",\"config\":{\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],\"Cmd\":[\"sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$diff_id\"]},\"history\":[{\"created\":\"1970-01-01T00:00:00Z\",\"created_by\":\"make-busybox-image.sh\"}]}" >"$config"
config_hex="$(sha256sum "$config" | cut -d' ' -f1)"
config_size="$(stat -c %s "$config")"

stage="$work/out"
mkdir -p "$stage"
if [ "$format" = oci ]; then
    mkdir -p "$stage/blobs/sha256"
    gzip -n -9 -c "$layer_tar" >"$work/layer.tar.gz"
    layer_hex="$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)"
    layer_size="$(stat -c %s "$work/layer.tar.gz")"
    mv "$work/layer.tar.gz" "$stage/blobs/sha256/$layer_hex"
    cp "$config" "$stage/blobs/sha256/$config_hex"
    manifest="$work/manifest.json"
    printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$config_hex\",\"size\":$config_size},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$layer_hex\",\"size\":$layer_size}]}" >"$manifest"
    manifest_hex="$(sha256sum "$manifest" | cut -d' ' -f1)"
    manifest_size="$(stat -c %s "$manifest")"
    cp "$manifest" "$stage/blobs/sha256/$manifest_hex"
    annotations="\"io.containerd.image.name\":\"$name\""
    [ -n "$refname" ] && annotations="$annotations,\"org.opencontainers.image.ref.name\":\"$refname\""
    printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$stage/oci-layout"
    printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$manifest_hex\",\"size\":$manifest_size,\"annotations\":{$annotations},\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"}}]}" >"$stage/index.json"
    members=(oci-layout index.json blobs)
else
    mkdir -p "$stage/$diff_id"
    cp "$layer_tar" "$stage/$diff_id/layer.tar"
    cp "$config" "$stage/$config_hex.json"
    printf '%s' "[{\"Config\":\"$config_hex.json\",\"RepoTags\":[\"$name\"],\"Layers\":[\"$diff_id/layer.tar\"]}]" >"$stage/manifest.json"
    members=(manifest.json "$config_hex.json" "$diff_id")
    if [ -n "$refname" ]; then
        repo="${name%:"$refname"}"
        printf '%s' "{\"$repo\":{\"$refname\":\"$diff_id\"}}" >"$stage/repositories"
        members+=(repositories)
    fi
fi

# Write next to the destination and rename, so a failed run leaves no partial file.
tmp_out="$out.tmp.$$"
trap 'rm -rf "$work" "$tmp_out"' EXIT
(cd "$stage" && det_tar --no-recursion -cf - "${members[@]}" $(find "${members[@]}" -mindepth 1 | LC_ALL=C sort)) >"$tmp_out"
mv -f "$tmp_out" "$out"
echo "$out: $format image $name, id sha256:$config_hex"
