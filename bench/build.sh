#!/usr/bin/env bash
# bench/build.sh: `berth build` beside `docker build` and `podman build`, same Dockerfile, same
# context, same base image, in one run: a cold build (no cache) and a rebuild with nothing
# changed (every step cached). Prints medians, berth / peer, and the peak RSS of berth's build.
#
#   ./bench/build.sh         # RUNS=7; BERTH=path/to/berth skips the build
#
# The Dockerfile has the issue's 5 steps: COPY of 200 files, 3 RUNs, ENV/CMD (ENV and CMD are
# one step each in every builder's count: 6 instructions after FROM).
# docker: a private dockerd (overlay2), with its legacy builder and with BuildKit (Debian's
# docker 20.10 CLI, /usr/bin/docker, drives dockerd's BuildKit itself; later CLIs need the
# buildx plugin, not packaged here); berth is compared with the faster of the two.
# podman: buildah inside podman, overlay, its own root. The tools take turns within each
# round, so load that drifts falls on all alike. Needs root. Everything lives in one temp dir
# that is removed on exit.
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME with a '.'
export DOCKER_BUILDKIT=0 # the legacy builder, unless DB: see above
cd "$(dirname "$0")/.."
RUNS=${RUNS:-7}
. bench/lib.sh
bench_needs bench/build.sh podman docker dockerd python3 /usr/bin/time /usr/bin/docker
bench_berth

# Short: dockerd's unix socket lives here.
W=$(mktemp -d /tmp/bbd.XXXXXX)
export BERTH_ROOT=$W/berth
IMG=localhost/bench/busybox:1
D="docker -H unix://$W/d.sock"
DB="env DOCKER_BUILDKIT=1 /usr/bin/docker -H unix://$W/d.sock"
P="podman --root $W/podman --runroot $W/podman-run"
# runc: crun refuses hybrid cgroup hosts; root here lacks CAP_SYS_RESOURCE and has 20000 open
# files at most.
PB="--runtime runc --ulimit nofile=20000:20000 --ulimit nproc=32768:32768"
DOCKERD_PID=
cleanup() {
  set +e
  trap - EXIT INT TERM
  if [ -n "$DOCKERD_PID" ]; then
    kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
  fi
  [ -d "$W/podman" ] && $P rmi -af >/dev/null 2>&1
  awk -v w="$W/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The base image: a static busybox, as a tar, imported by each tool.
R=$W/rootfs
mkdir -p "$R/bin" "$R/proc" "$R/sys" "$R/dev" "$R/etc" "$R/tmp" "$R/root"
cp /bin/busybox "$R/bin/busybox"
for a in sh true ls cat find wc sort md5sum mkdir echo; do ln -s busybox "$R/bin/$a"; done
tar -C "$R" -cf "$W/rootfs.tar" .
"$BERTH" import "$W/rootfs.tar" "$IMG" >/dev/null
$P import -q "$W/rootfs.tar" "$IMG" >/dev/null
bench_dockerd "$W" overlay2
$D import "$W/rootfs.tar" "$IMG" >/dev/null

# The context: 200 files of 1-8 KiB in 10 directories, and the Dockerfile.
C=$W/ctx
python3 - "$C" <<'EOF'
import os, random, sys
random.seed(20)
for i in range(200):
    d = f"{sys.argv[1]}/src/d{i % 10}"
    os.makedirs(d, exist_ok=True)
    open(f"{d}/f{i}.txt", "wb").write(random.randbytes(1024 * (1 + i % 8)))
EOF
cat >"$C/Dockerfile" <<EOF
FROM $IMG
COPY src /app/src
RUN find /app/src -type f | sort > /app/files
RUN cat /app/src/d0/* | md5sum > /app/sum
RUN mkdir -p /app/out && wc -l /app/files > /app/out/count
ENV APP_HOME=/app
CMD ["cat", "/app/out/count"]
EOF

# berth under /usr/bin/time: its peak RSS (KiB) appended to $W/rss.NAME.
timed_berth() {
  local name=$1
  shift
  timed "$name" /usr/bin/time -f %M -o "$W/rss" "$BERTH" "$@"
  cat "$W/rss" >>"$W/rss.$name"
}

round() {
  timed_berth berth_cold build --no-cache --network none -t bench:1 "$C"
  timed docker_cold $D build --no-cache --network none -t bench:1 "$C"
  timed buildkit_cold $DB build -q --no-cache --network none -t bench:bk "$C"
  timed podman_cold $P build $PB --no-cache --network none -t bench:1 "$C"
  timed_berth berth_cached build --network none -t bench:1 "$C"
  timed docker_cached $D build --network none -t bench:1 "$C"
  timed buildkit_cached $DB build -q --network none -t bench:bk "$C"
  timed podman_cached $P build $PB --network none -t bench:1 "$C"
}
echo "build: 200-file COPY, 3 RUNs, ENV, CMD on $IMG; median of $RUNS rounds (after a warm-up round)"
round
# The cached rebuild must really be cached: berth says so in its output.
[ "$("$BERTH" build --network none -t bench:1 "$C" 2>&1 | grep -c ' CACHED$')" -ge 4 ] ||
  { echo "berth's rebuild was not fully cached" >&2; exit 1; }
rm -f "$W"/t.* "$W"/rss.*
for _ in $(seq "$RUNS"); do round; done

python3 - "$W" <<'EOF'
import statistics, sys
w = sys.argv[1]
med = {}
for k in ["berth_cold", "docker_cold", "buildkit_cold", "podman_cold",
          "berth_cached", "docker_cached", "buildkit_cached", "podman_cached"]:
    t = sorted(int(x) / 1000 for x in open(f"{w}/t.{k}"))
    med[k] = statistics.median(t)
    print(f"  {k:14} median {med[k]:8.1f} ms   min {t[0]:8.1f}   max {t[-1]:8.1f}")
for kind, target in [("cold", 0.5), ("cached", 0.2)]:
    # docker: its faster builder here, as the target says.
    fast = min(med[f"docker_{kind}"], med[f"buildkit_{kind}"])
    for peer, t in [("docker", fast), ("podman", med[f"podman_{kind}"])]:
        r = med[f"berth_{kind}"] / t
        print(f"  {kind:6} berth / {peer:6} = {r:5.2f}x   (target <= {target}x)")
for k in ["berth_cold", "berth_cached"]:
    rss = sorted(int(x) for x in open(f"{w}/rss.{k}"))
    print(f"  {k:14} peak RSS median {statistics.median(rss) / 1024:6.1f} MiB   max {rss[-1] / 1024:6.1f} MiB")
EOF
