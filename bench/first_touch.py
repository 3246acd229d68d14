#!/usr/bin/env python3
"""How fast this machine hands a process fresh memory: the first write of an anonymous mapping
(the kernel faults in and zeroes each page, and a virtual machine's host may have to back it
again), against writing the same mapping a second time, and against a mapping made again from
the memory the process has just given back.

    python3 bench/first_touch.py [--mib 1024] [--rounds 4] [--base-pages]

Round 0 maps memory the process has never touched, so its pages come from the system's free
pool; rounds 1.. map again right after unmapping the previous round's memory, so they mostly get
those same pages back. On a virtual machine whose guest reports free memory to its host
(virtio-balloon free page reporting), the free pool's huge pages are the ones reported, and the
first write of one costs the host a fresh 2 MiB: round 0 is then many times slower than the
rounds after it. bench/RESULTS.md uses this to explain why a plate run's system time follows its
peak memory on the development machine. Needs Linux and glibc (ctypes); no packages.
"""

import argparse
import ctypes
import ctypes.util
import time

PROT_READ, PROT_WRITE = 0x1, 0x2
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20
MADV_HUGEPAGE = 14
HUGE = 2 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=1024, help="mapping size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds (default 4)")
    parser.add_argument("--base-pages", action="store_true", help="do not mark the mapping for huge pages")
    args = parser.parse_args()

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

    size = args.mib << 20
    span = size + HUGE
    gib = size / (1 << 30)
    print(f"{args.mib} MiB, {'base pages' if args.base_pages else 'marked for huge pages'}")
    for round_ in range(args.rounds):
        raw = libc.mmap(None, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if raw in (None, ctypes.c_void_p(-1).value):
            raise SystemExit(f"mmap failed: errno {ctypes.get_errno()}")
        start = (raw + HUGE - 1) & ~(HUGE - 1)
        if not args.base_pages and libc.madvise(start, size, MADV_HUGEPAGE) != 0:
            print(f"  (madvise refused: errno {ctypes.get_errno()}; transparent huge pages off?)")
        t0 = time.perf_counter()
        ctypes.memset(start, 1, size)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        ctypes.memset(start, 2, size)
        second = time.perf_counter() - t0
        source = "pages never touched by this process" if round_ == 0 else "pages this process just gave back"
        print(
            f"round {round_} ({source}): first write {first * 1e3:7.0f} ms = {gib / first:5.1f} GiB/s, "
            f"second write {second * 1e3:5.0f} ms = {gib / second:5.1f} GiB/s"
        )
        libc.munmap(raw, span)


if __name__ == "__main__":
    main()
