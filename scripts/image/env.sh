# Shared settings for building and running the cacheproxy image with podman + runc, no Docker daemon and
# no registry. Source it: `. scripts/image/env.sh`; then "$PODMAN" ... uses the same image store.
# Why runc: crun refuses hybrid cgroup hosts. Why explicit ulimits: root may lack CAP_SYS_RESOURCE, so
# podman's default nofile=1048576 fails; podman caps its own nproc at 32768.
W=${W:-/tmp/cacheproxy-image}
BASE=${BASE:-docker.io/library/debian:bookworm-slim}
TAG=${TAG:-localhost/cacheproxy:dev}
mkdir -p "$W"
_np=$(ulimit -Hu); { [ "$_np" = unlimited ] || [ "$_np" -gt 32768 ]; } && _np=32768
printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n[engine]\nruntime = "runc"\n' \
  "$(ulimit -Hn)" "$(ulimit -Hn)" "$_np" "$_np" > "$W/containers.conf"
export CONTAINERS_CONF=$W/containers.conf
# Not CONTAINERS_STORAGE_CONF: that makes each run hang ~20 s.
PODMAN="podman --root $W/storage --runroot $W/run"
export W BASE TAG PODMAN
