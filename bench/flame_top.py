"""Top frames of a `perf script` dump of an `hcs run` (what bench/profile.sh prints).

Self time is charged to the innermost frame that names a function: closures, iterator adapters
and rayon's plumbing are folded into the function they run for. Inclusive time is listed only
for hcs's own functions; rayon's work stealing lets a waiting frame run another well's work, so
an inclusive figure can exceed the function's own share.
    python3 bench/flame_top.py PERF_SCRIPT_OUTPUT [N]
"""
import collections
import re
import sys

PLUMBING = re.compile(
    r"^(core::|alloc::|std::|rayon|<core::|<alloc::|<rayon|<std::|\{closure|call_mut|call_once|call<|fold|"
    r"for_each|map<|try_fold|do_call|catch_unwind|halt_unwinding|execute<|run_inline|helper<|bridge|with<|next<|"
    r"consume|spec_fold|to_vec_mapped|extend_trusted|sum<|from$|ndarray::zip|<ndarray::|ndarray::iterators|"
    r"ndarray::impl_methods|join_context|callback<|with_producer<|drive|par_|collect|from_shape|in_worker|install<|scope<|\[unknown\])"
)


def stacks(path):
    cur = []
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line.strip():
            if cur:
                yield cur
            cur = []
        elif line[0] not in " \t":
            cur = []
        else:
            parts = line.strip().split(" ", 1)
            if len(parts) == 2:
                cur.append(re.sub(r"\+0x[0-9a-f]+$", "", parts[1].rsplit(" (", 1)[0]))
    if cur:
        yield cur


def main():
    n_top = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    own, inclusive, total = collections.Counter(), collections.Counter(), 0
    for frames in stacks(sys.argv[1]):
        total += 1
        leaf = next((f for f in frames if not PLUMBING.match(f)), frames[0])
        own[leaf] += 1
        for f in {f for f in frames if f.startswith("hcs_")}:
            inclusive[f] += 1
    print(f"{total} samples")
    print(f"| self % | frame (top {n_top}) |\n| ---: | --- |")
    for f, c in own.most_common(n_top):
        print(f"| {100 * c / total:.1f} | `{f[:100]}` |")
    print(f"\n| inclusive % | hcs frame (top {n_top}) |\n| ---: | --- |")
    for f, c in inclusive.most_common(n_top + 4)[4:]:  # the first four are the well/step drivers
        print(f"| {100 * c / total:.1f} | `{f[:100]}` |")


main()
