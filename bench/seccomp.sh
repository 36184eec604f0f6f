#!/usr/bin/env bash
# bench/seccomp.sh: `run --rm` with docker's default seccomp filter, berth beside bare crun and
# runc given the very same filter, in one run, taking turns within each round.
#
#   ./bench/seccomp.sh      # RUNS=31; BERTH=path/to/berth skips the build
#
# berth: `run --rm --network none IMAGE true` (its default profile), and the same with
# `--security-opt seccomp=unconfined` (what the filter costs berth). crun and runc: `run` of an
# OCI bundle of the same root filesystem (crun's default spec: its own pid, mount, ipc, uts and
# network namespaces; `true`), once with the `linux.seccomp` section of the Spec berth wrote for
# a container of its own, once without. crun runs inside a mount namespace that hides the
# cgroup2 mount of a hybrid host; crun's and runc's state live on a tmpfs, as /run is.
# Prints medians and berth / crun, berth / runc (both with the filter; target for crun <= 1x).
# Needs root. Everything lives in one temp dir that is removed on exit.
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME with a '.'
cd "$(dirname "$0")/.."
RUNS=${RUNS:-31}
. bench/lib.sh
bench_needs bench/seccomp.sh crun runc nsenter unshare python3
bench_berth

W=$(mktemp -d /tmp/bsc.XXXXXX)
export BERTH_ROOT=$W/berth
IMG=localhost/bench/busybox:1
cleanup() {
  set +e
  trap - EXIT INT TERM
  "$BERTH" ps -aq 2>/dev/null | xargs -r "$BERTH" rm -f >/dev/null 2>&1
  awk -v w="$W/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The image: a static busybox with a few applets.
R=$W/rootfs
mkdir -p "$R/bin" "$R/proc" "$R/sys" "$R/dev" "$R/etc" "$R/tmp" "$R/root"
cp /bin/busybox "$R/bin/busybox"
for a in sh true sleep; do ln -s busybox "$R/bin/$a"; done
tar -C "$R" -cf "$W/rootfs.tar" .
"$BERTH" import "$W/rootfs.tar" "$IMG" >/dev/null
mkdir "$W/tmpfs"
mount -t tmpfs -o mode=755 tmpfs "$W/tmpfs"

# berth's filter as its Spec holds it (the Spec of a running container of its own).
id=$("$BERTH" run -d --pull never --network none "$IMG" sleep 100)
cp "$BERTH_ROOT/containers/$id/run/config.json" "$W/berth-spec.json"
"$BERTH" rm -f "$id" >/dev/null

# Two bundles on the one root filesystem: with berth's seccomp section, and without.
mkdir "$W/plain" "$W/filtered"
(cd "$W/plain" && crun spec)
python3 - "$W" <<'EOF'
import json, sys
w = sys.argv[1]
s = json.load(open(f"{w}/plain/config.json"))
s["process"]["args"] = ["true"]
s["process"]["terminal"] = False
s["root"] = {"path": f"{w}/rootfs", "readonly": False}  # writable, as the engines give it
s["linux"].pop("seccomp", None)
json.dump(s, open(f"{w}/plain/config.json", "w"))
seccomp = json.load(open(f"{w}/berth-spec.json"))["linux"]["seccomp"]
s["linux"]["seccomp"] = seccomp
json.dump(s, open(f"{w}/filtered/config.json", "w"))
print(f"filter: berth's default, {len(seccomp['syscalls'])} rules, default action {seccomp['defaultAction']}")
EOF
bench_crun_ns

round() {
  timed berth "$BERTH" run --rm --pull never --network none "$IMG" true
  timed_crun crun "$W/filtered" "c$1"
  timed runc runc --root "$W/tmpfs/runc" run -b "$W/filtered" "r$1"
  timed berth_unconfined "$BERTH" run --rm --pull never --network none \
    --security-opt seccomp=unconfined "$IMG" true
  timed_crun crun_plain "$W/plain" "p$1"
  timed runc_plain runc --root "$W/tmpfs/runc" run -b "$W/plain" "q$1"
}
echo "run --rm --network none $IMG true; median of $RUNS rounds (after 2 warm-up rounds)"
round w1
round w2
rm -f "$W"/t.*
for i in $(seq "$RUNS"); do round "$i"; done

python3 - "$W" <<'EOF'
import statistics, sys
w = sys.argv[1]
rows = [("berth", "berth run --rm (default seccomp)"), ("crun", "crun run (same seccomp)"),
        ("runc", "runc run (same seccomp)"), ("berth_unconfined", "berth run --rm, unconfined"),
        ("crun_plain", "crun run, no seccomp"), ("runc_plain", "runc run, no seccomp")]
med = {}
for k, label in rows:
    t = sorted(int(x) / 1000 for x in open(f"{w}/t.{k}"))
    med[k] = statistics.median(t)
    print(f"  {label:34} median {med[k]:7.1f} ms   min {t[0]:7.1f}   max {t[-1]:7.1f}")
b = med["berth"]
print(f"  berth / crun = {b / med['crun']:5.2f}x   (target <= 1x)")
print(f"  berth / runc = {b / med['runc']:5.2f}x")
print(f"  the filter's cost: berth {b - med['berth_unconfined']:+.1f} ms, "
      f"crun {med['crun'] - med['crun_plain']:+.1f} ms, runc {med['runc'] - med['runc_plain']:+.1f} ms")
EOF
