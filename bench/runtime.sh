#!/usr/bin/env bash
# bench/runtime.sh: container start latency and `ps` over many containers, berth beside podman,
# docker (a private dockerd), bare crun and runc, on the same busybox image, in one run.
#
#   ./bench/runtime.sh       # RUNS=21 BRIDGE_RUNS=11 NET_RUNS=21 PS_CONTAINERS=100 PS_PEERS=1; BERTH=path/to/berth skips the build
#   BUSY_DISK=1 ./bench/runtime.sh   # the start rounds beside a loop that copies and deletes small
#                                    # files on the same disk, as builds do (see bench/README.md)
#
# Start: `run --rm --network none IMAGE true` for berth, podman (runc: crun refuses hybrid cgroup
# hosts) and docker; bare `crun run` / `runc run` on an OCI bundle of the same root filesystem
# (crun inside a mount namespace that hides the cgroup2 mount of a hybrid host; their state on a
# tmpfs, as /run is); the floor, `unshare -fpmuin chroot ROOTFS true`; and, to show what the
# disk costs, berth again with its root on a tmpfs (not counted in the ratios). The tools take
# turns within each round, so load that drifts during the run falls on all of them alike.
# Prints medians and berth / peer.
# ps: PS_CONTAINERS detached `sleep 1000` containers, then `ps` and `ps -a` under hyperfine
# (and the same for docker and podman unless PS_PEERS=0). Needs root.
# Everything lives in one temp dir that is removed on exit: containers, dockerd, mounts.
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME with a '.'
cd "$(dirname "$0")/.."
RUNS=${RUNS:-21}
NPS=${PS_CONTAINERS:-100}
PS_PEERS=${PS_PEERS:-1}
BUSY_DISK=${BUSY_DISK:-0}
. bench/lib.sh
bench_needs bench/runtime.sh podman docker dockerd crun runc hyperfine nsenter unshare python3
bench_berth

# Short: dockerd's unix socket lives here.
W=$(mktemp -d /tmp/brt.XXXXXX)
export BERTH_ROOT=$W/berth
IMG=localhost/bench/busybox:1
D="docker -H unix://$W/d.sock"
P="podman --root $W/podman --runroot $W/podman-run --runtime runc"
# root here lacks CAP_SYS_RESOURCE and has 20000 open files at most
PODMAN_LIMITS="--ulimit nofile=20000:20000 --ulimit nproc=32768:32768"
DOCKERD_PID=
BUSY_PID=
cleanup() {
  set +e
  trap - EXIT INT TERM
  [ -n "$BUSY_PID" ] && rm -f "$W/busy/on" && wait "$BUSY_PID" 2>/dev/null
  "$BERTH" ps -aq 2>/dev/null | xargs -r "$BERTH" rm -f >/dev/null 2>&1
  "$BERTH" ps -aq --root "$W/tmpfs/berth" 2>/dev/null | xargs -r "$BERTH" rm -f --root "$W/tmpfs/berth" >/dev/null 2>&1
  if [ -n "$DOCKERD_PID" ]; then
    $D ps -aq 2>/dev/null | xargs -r $D rm -f >/dev/null 2>&1
    kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
  fi
  [ -d "$W/podman" ] && $P rm -af -t 0 >/dev/null 2>&1
  # Podman's overlay bind, the namespace file, leftovers: deepest first.
  awk -v w="$W/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The image: a static busybox with a few applets, as a tar, imported by each tool.
R=$W/rootfs
mkdir -p "$R/bin" "$R/proc" "$R/sys" "$R/dev" "$R/etc" "$R/tmp" "$R/root"
cp /bin/busybox "$R/bin/busybox"
for a in sh true sleep ls cat; do ln -s busybox "$R/bin/$a"; done
tar -C "$R" -cf "$W/rootfs.tar" .
"$BERTH" import "$W/rootfs.tar" "$IMG" >/dev/null
mkdir "$W/tmpfs"
mount -t tmpfs -o mode=755 tmpfs "$W/tmpfs"
"$BERTH" import --root "$W/tmpfs/berth" "$W/rootfs.tar" "$IMG" >/dev/null
$P import -q "$W/rootfs.tar" "$IMG" >/dev/null

bench_dockerd "$W" vfs
$D import "$W/rootfs.tar" "$IMG" >/dev/null

# The OCI bundle for crun and runc: the same root filesystem, crun's default spec (its own
# pid, mount, ipc, uts and network namespaces: --network none), `true`, no terminal.
mkdir "$W/bundle"
cp -a "$R" "$W/bundle/rootfs"
(cd "$W/bundle" && crun spec)
python3 - "$W/bundle/config.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
s["process"]["args"] = ["true"]
s["process"]["terminal"] = False
s["root"]["readonly"] = False  # writable, as the engines give it
json.dump(s, open(sys.argv[1], "w"))
EOF
bench_crun_ns

round() {
  timed berth "$BERTH" run --rm --pull never --network none "$IMG" true
  timed podman $P run --rm --pull never --network none $PODMAN_LIMITS "$IMG" true
  timed docker $D run --rm --pull never --network none "$IMG" true
  timed_crun crun "$W/bundle" "c$1"
  timed runc runc --root "$W/tmpfs/runc" run -b "$W/bundle" "r$1"
  timed floor unshare -fpmuin chroot "$W/bundle/rootfs" true
  timed berth_tmpfs "$BERTH" run --root "$W/tmpfs/berth" --rm --pull never --network none "$IMG" true
}
echo "start: run --rm --network none $IMG true; median of $RUNS rounds (after 2 warm-up rounds)"
round w1
round w2
rm -f "$W"/t.*
# The disk under the stores: what every process on the host wrote, discarded and flushed meanwhile.
DEV=$(basename "$(findmnt -no SOURCE -T "$W")")
disk() { awk -v d="$DEV" '$3 == d { print $10, $15, $19 }' /proc/diskstats; }
if [ "$BUSY_DISK" = 1 ]; then
  # 3000 files of 4-16 KiB, copied and the previous copy deleted, over and over, until the
  # file busy/on goes (at most 10 min).
  python3 -c 'import os, sys
for i in range(3000):
    d = f"{sys.argv[1]}/{i % 30}"; os.makedirs(d, exist_ok=True)
    open(f"{d}/{i}", "wb").write(os.urandom(4096 * (1 + i % 4)))' "$W/busy/src"
  touch "$W/busy/on"
  (
    end=$((SECONDS + 600)) n=0
    while [ -e "$W/busy/on" ] && [ "$SECONDS" -lt "$end" ]; do
      n=$((n + 1))
      cp -r "$W/busy/src" "$W/busy/c$n"
      rm -rf "$W/busy/c$((n - 1))"
    done
  ) &
  BUSY_PID=$!
  echo "  (beside a loop copying and deleting 3000 small files in $W/busy)"
fi
DISK0=$(disk)
for i in $(seq "$RUNS"); do round "$i"; done
DISK1=$(disk)
if [ -n "$BUSY_PID" ]; then rm "$W/busy/on"; wait "$BUSY_PID"; BUSY_PID=; fi

python3 - "$W" "$DEV" "$DISK0" "$DISK1" <<'EOF'
import statistics, sys
w = sys.argv[1]
rows = [("berth", "berth run --rm"), ("podman", "podman run --rm (runc)"),
        ("docker", "docker run --rm (dockerd, vfs)"), ("crun", "crun run (bundle)"),
        ("runc", "runc run (bundle)"), ("floor", "unshare -fpmuin chroot true"),
        ("berth_tmpfs", "berth run --rm, root on tmpfs")]
med = {}
for k, label in rows:
    t = sorted(int(x) / 1000 for x in open(f"{w}/t.{k}"))
    med[k] = statistics.median(t)
    print(f"  {label:32} median {med[k]:7.1f} ms   min {t[0]:7.1f}   max {t[-1]:7.1f}")
b = med["berth"]
for k, target in [("podman", "<= 0.3"), ("docker", "<= 0.3"), ("crun", "<= 2"), ("runc", "")]:
    print(f"  berth / {k:6} = {b / med[k]:5.2f}x" + (f"   (target {target}x)" if target else ""))
if sys.argv[3] and sys.argv[4]:
    (w0, d0, f0), (w1, d1, f1) = (map(int, a.split()) for a in sys.argv[3:5])
    print(f"  disk {sys.argv[2]} meanwhile (every process on the host): {(w1 - w0) / 2048:.0f} MiB "
          f"written, {d1 - d0} discards, {f1 - f0} flushes")
EOF

# On a bridge: the network's share of a start. berth on its default bridge beside the same
# run with --network none (what the bridge adds) and beside podman's default network (its CNI
# bridge, with a veth, an address and NAT rules as berth's), taking turns.
BRIDGE_RUNS=${BRIDGE_RUNS:-11}
bridge_round() {
  timed berth_bridge "$BERTH" run --rm --pull never "$IMG" true
  timed berth_none "$BERTH" run --rm --pull never --network none "$IMG" true
  timed podman_bridge $P run --rm --pull never $PODMAN_LIMITS "$IMG" true
}
bridge_round
rm -f "$W"/t.*_bridge "$W"/t.berth_none
for i in $(seq "$BRIDGE_RUNS"); do bridge_round; done
python3 - "$W" "$BRIDGE_RUNS" <<'EOF'
import statistics, sys
w = sys.argv[1]
med = {k: statistics.median(int(x) / 1000 for x in open(f"{w}/t.{k}"))
       for k in ("berth_bridge", "berth_none", "podman_bridge")}
print(f"bridge: run --rm IMAGE true on each tool's default bridge network; median of {sys.argv[2]}")
print(f"  berth run --rm (berth0)           median {med['berth_bridge']:7.1f} ms")
print(f"  berth run --rm --network none     median {med['berth_none']:7.1f} ms")
print(f"  podman run --rm (cni-podman0)     median {med['podman_bridge']:7.1f} ms")
print(f"  berth bridge / berth none = {med['berth_bridge'] / med['berth_none']:5.2f}x   (target <= 1.3x)")
print(f"  berth / podman = {med['berth_bridge'] / med['podman_bridge']:5.2f}x   (target <= 0.1x)")
EOF

# User-defined networks: `network create` + `network rm` of a network no container uses,
# berth beside podman (its CNI configuration in a directory of the run's own), taking turns.
# berth writes and removes two small files (the bridge comes with the first container);
# podman writes its CNI conflist.
NET_RUNS=${NET_RUNS:-21}
PN="$P --network-config-dir $W/podman-net"
mkdir "$W/podman-net"
berth_net() { "$BERTH" network create benchnet && "$BERTH" network rm benchnet; }
podman_net() { $PN network create benchnet && $PN network rm benchnet; }
net_round() {
  timed berth_net berth_net
  timed podman_net podman_net
}
net_round
rm -f "$W"/t.*_net
for i in $(seq "$NET_RUNS"); do net_round; done
python3 - "$W" "$NET_RUNS" <<'EOF'
import statistics, sys
w = sys.argv[1]
med = {k: statistics.median(int(x) / 1000 for x in open(f"{w}/t.{k}"))
       for k in ("berth_net", "podman_net")}
print(f"networks: network create NAME + network rm NAME, unused; median of {sys.argv[2]}")
print(f"  berth   median {med['berth_net']:7.1f} ms   (target <= 10 ms)")
print(f"  podman  median {med['podman_net']:7.1f} ms")
print(f"  berth / podman = {med['berth_net'] / med['podman_net']:5.2f}x")
EOF

# ps over NPS running containers.
hyper_ms() { # KEY LABEL COMMAND: prints the hyperfine median in ms, and keeps it in $W/ps.KEY
  hyperfine -N -w 3 -r 30 --export-json "$W/h.json" "$3" >/dev/null 2>&1 ||
    { echo "failed: $3" >&2; $3 >&2; exit 1; }
  python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["results"][0]
open(sys.argv[2], "w").write("%.2f" % (r["median"] * 1e3))
print("  %s: %.1f ms (mean %.1f ± %.1f)" % (sys.argv[3], r["median"] * 1e3, r["mean"] * 1e3, r["stddev"] * 1e3))' \
    "$W/h.json" "$W/ps.$1" "$2"
}
ps_bench() { # NAME CLI [RUN FLAGS]: start NPS containers, time ps and ps -a, remove them
  local name=$1 cli=$2 flags=${3:-} s e n
  s=${EPOCHREALTIME/./}
  for i in $(seq "$NPS"); do
    $cli run -d --pull never --network none $flags --name "ps$i" "$IMG" sleep 1000 >/dev/null
  done
  e=${EPOCHREALTIME/./}
  n=$($cli ps -q | wc -l)
  [ "$n" = "$NPS" ] || { echo "$name ps shows $n running containers, not $NPS" >&2; exit 1; }
  echo "  $name: $NPS x run -d: $(((e - s) / 1000)) ms in all"
  hyper_ms "$name" "$name ps   " "$cli ps"
  hyper_ms "$name-a" "$name ps -a" "$cli ps -a"
  s=${EPOCHREALTIME/./}
  # sleep as pid 1 ignores SIGTERM: podman's rm -f would wait 10 s for each without -t 0
  $cli rm -f $([ "$name" = podman ] && echo -t 0) $($cli ps -aq) >/dev/null
  e=${EPOCHREALTIME/./}
  echo "  $name rm -f of $NPS: $(((e - s) / 1000)) ms"
}
echo "ps over $NPS running containers (sleep 1000; hyperfine median of 30; target for berth < 50 ms)"
ps_bench berth "$BERTH"
if [ "$PS_PEERS" = 1 ]; then
  ps_bench docker "$D"
  ps_bench podman "$P" "$PODMAN_LIMITS"
  python3 - "$W" <<'EOF'
import sys
ps = lambda k: float(open(f"{sys.argv[1]}/ps.{k}").read())
for peer in ("docker", "podman"):
    print(f"  berth ps / {peer} ps = {ps('berth') / ps(peer):.2f}x, "
          f"ps -a: {ps('berth-a') / ps(peer + '-a'):.2f}x")
EOF
fi
