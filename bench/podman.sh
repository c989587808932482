# Sourced by bench/run.sh --podman: the same pod (examples/web-sidecar.yaml,
# same busybox archive) run by Debian's podman 4.3 with runc, for a rough
# comparison. `podman play kube` is podman's `apply`.
#
# Adjustments needed on this machine (see BENCHMARKS.md):
#   - private storage (--root/--runroot under the bench root), cgroupfs manager,
#     file events backend: nothing touches /var/lib/containers;
#   - --network none (no CNI/netavark setup; podhost's pod has lo only too),
#     so the `ports:` block is removed (podman refuses port mappings then);
#   - default_ulimits lowered: podman asks runc for nofile=1048576 and a
#     high nproc, which fails here (CAP_SYS_RESOURCE is not in the bounding set).
# shellcheck shell=bash

podman_bench() {
    local tar="$1" iters="$2" csv="$3"
    PM_DIR="$ROOT/podman"   # global: the cleanup trap uses pm after this function returned
    command -v podman >/dev/null || { log "podman not installed (apt-get install --no-install-recommends podman runc catatonit)"; return 1; }
    command -v runc >/dev/null || { log "runc not installed"; return 1; }
    mkdir -p "$PM_DIR"
    printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=4096:4096"]\n' "$(ulimit -Hn)" "$(ulimit -Hn)" >"$PM_DIR/containers.conf"
    pm() {
        CONTAINERS_CONF="$PM_DIR/containers.conf" timeout 120 podman --root "$PM_DIR/storage" --runroot "$PM_DIR/run" \
            --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"
    }
    PODMAN_PODS=()
    podman_cleanup() {
        local p
        [ -n "$PM_DIR" ] || return 0
        for p in "${PODMAN_PODS[@]}"; do pm pod rm -f -t 0 "$p" >/dev/null 2>&1 || true; done
        pm rmi -a -f >/dev/null 2>&1 || true
    }
    log "podman $(podman --version | awk '{ print $3 }') with $(runc --version | head -1)"
    pm load -i "$tar" >/dev/null || { log "podman load failed"; return 1; }

    # "conmon rss, pss" etc. for a pod: sums over its conmons and its infra process
    # (the per-pod overhead that corresponds to podhost's shim + pause).
    pod_overhead() {
        local pod="$1" c cpid pid infra rss=0 pss=0 n=0 m
        infra="$(pm pod inspect "$pod" --format '{{.InfraContainerID}}')"
        for c in $(pm ps -q --no-trunc --filter "pod=$pod"); do
            read -r pid cpid < <(pm inspect --format '{{.State.Pid}} {{.State.ConmonPid}}' "$c")
            read -ra m <<<"$(mem_of "$cpid")"; rss=$((rss + m[0])); pss=$((pss + m[3])); n=$((n + 1))
            if [ "$c" = "$infra" ]; then
                read -ra m <<<"$(mem_of "$pid")"; rss=$((rss + m[0])); pss=$((pss + m[3]))
            fi
        done
        echo "$rss $pss $n"
    }
    pod_up() { # both app containers running
        local c n=0
        for c in "$1-web" "$1-sidecar"; do
            [ "$(pm inspect --format '{{.State.Running}}' "$c" 2>/dev/null)" = true ] && n=$((n + 1))
        done
        [ "$n" = 2 ]
    }
    manifest_podman() {
        sed -e "s/^  name: web-sidecar\$/  name: $1/" -e '/^    ports:$/,/^      containerPort:/d' "$EXAMPLE" >"$PM_DIR/$1.yaml"
        echo "$PM_DIR/$1.yaml"
    }

    echo "iteration,pod,play_kube_ms,running_ms,delete_ms,conmons,overhead_rss_kib,overhead_pss_kib" >"$csv"
    local i name f t0 t1 t2 t3 t4 deadline orss opss on
    for i in $(seq "$iters"); do
        name="pm-$i"
        f="$(manifest_podman "$name")"
        PODMAN_PODS+=("$name")
        t0=$(now)
        pm play kube --network none "$f" >/dev/null || { podman_cleanup; log "podman play kube failed"; return 1; }
        t1=$(now)
        deadline=$(( t0 + START_TIMEOUT * 1000000000 ))
        until pod_up "$name"; do
            [ "$(now)" -lt "$deadline" ] || { podman_cleanup; log "podman pod $name not running in ${START_TIMEOUT}s"; return 1; }
            sleep "$POLL_SLEEP"
        done
        t2=$(now)
        sleep 1
        read -r orss opss on <<<"$(pod_overhead "$name")"
        t3=$(now)
        pm pod rm -f -t 0 "$name" >/dev/null || { podman_cleanup; log "podman pod rm $name failed"; return 1; }
        t4=$(now)
        echo "$i,$name,$(ms "$t0" "$t1"),$(ms "$t0" "$t2"),$(ms "$t3" "$t4"),$on,$orss,$opss" >>"$csv"
        log "podman iter $i/$iters: play kube $(ms "$t0" "$t1") ms, running $(ms "$t0" "$t2") ms, pod rm -f -t 0 $(ms "$t3" "$t4") ms; $on conmons + infra: VmRSS $orss KiB, Pss $opss KiB"
    done
    podman_cleanup
}
