#!/usr/bin/env python3
"""Where a command's wall time goes while it is off the CPU, blocked in the kernel.

    perf record -q -g -a -o perf.data -e sched:sched_switch -e sched:sched_process_fork -- \\
        sh -c 'for i in $(seq 10); do berth run --rm IMAGE true; done'
    perf script -i perf.data | bench/offcpu.py 10        # 10: runs, to print per-run figures

Follows the process tree that perf started (its forks and threads, containers included), pairs
each time one of them leaves the CPU with the moment it comes back, and sums the uninterruptible
(D-state) waits by the kernel function that caused them; then lists the largest other causes,
and the time spent preempted (runnable, waiting for a core) and asleep (S state).
"""
import collections
import re
import sys

CAUSES = [
    ("ovl_sync_fs", "overlay umount: syncfs of the upper's filesystem"),
    ("sync_filesystem", "overlay umount: syncfs of the upper's filesystem"),
    ("blkdev_issue_discard", "file deletion: ext4 online discard (mount option)"),
    ("cgroup_procs_write", "cgroup.procs write: synchronize_rcu (v1 threadgroup lock)"),
    ("namespace_unlock", "umount: synchronize_rcu"),
]
SKIP = ("__schedule", "schedule", "entry_", "do_syscall", "x64_sys_call")
HEAD = re.compile(r"^(.+?)\s+(\d+)\s+\[\d+\]\s+([\d.]+):\s+(\S+):\s*(.*)$")


def events(lines):
    cur = None
    for line in lines:
        m = HEAD.match(line)
        if m:
            if cur:
                yield cur
            cur = {"comm": m[1].strip(), "pid": int(m[2]), "t": float(m[3]),
                   "ev": m[4], "args": m[5], "stack": []}
        elif cur and line.strip():
            cur["stack"].append(line.split()[1])
    if cur:
        yield cur


def main():
    runs = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    tree, away, queued = set(), {}, {}
    by_cause, other = collections.Counter(), collections.Counter()
    waits = collections.Counter()  # time off the CPU by the state left in: R (preempted), S
    asleep = {}
    for e in events(sys.stdin):
        if e["ev"] == "sched:sched_process_fork":
            m = re.search(r"pid=(\d+) child_comm=.* child_pid=(\d+)", e["args"])
            if int(m[1]) in tree:
                tree.add(int(m[1]))
                tree.add(int(m[2]))
            continue
        if e["ev"] != "sched:sched_switch":
            continue
        m = re.search(r"prev_comm=(.*) prev_pid=(\d+) .*prev_state=(\S+) ==> "
                      r"next_comm=(.*) next_pid=(\d+)", e["args"])
        prev, state, nxt = int(m[2]), m[3], int(m[5])
        # The command perf started, before its exec.
        if "perf-exec" in (m[1], m[4]):
            tree.add(prev if m[1] == "perf-exec" else nxt)
        if prev in tree and state.startswith("D"):
            away[prev] = (e["t"], [f for f in e["stack"] if not f.startswith(SKIP)])
        elif prev in tree and state.startswith("R"):
            queued[prev] = e["t"]
        elif prev in tree and state.startswith("S"):
            asleep[prev] = e["t"]
        for kind, left in (("R", queued), ("S", asleep)):
            if nxt in left:
                waits[kind] += (e["t"] - left.pop(nxt)) * 1000
        if nxt in away:
            t, stack = away.pop(nxt)
            ms = (e["t"] - t) * 1000
            text = " < ".join(stack)
            for key, cause in CAUSES:
                if key in text:
                    by_cause[cause] += ms
                    break
            else:
                other[" < ".join(f.split("+")[0] for f in stack[:4])] += ms
    print(f"blocked in the kernel (D state), per run, over {len(tree)} processes and threads:")
    for cause in dict.fromkeys(c for _, c in CAUSES):
        print(f"  {by_cause[cause] / runs:6.1f} ms  {cause}")
    for stack, ms in other.most_common(4):
        print(f"  {ms / runs:6.1f} ms  {stack}")
    print("off the CPU otherwise, per run, summed over those processes (overlapping waits add up):")
    print(f"  {waits['R'] / runs:6.1f} ms  preempted, runnable: waiting for a core")
    print(f"  {waits['S'] / runs:6.1f} ms  asleep: waiting for a child, a pipe, a socket, a timer")


if __name__ == "__main__":
    main()
