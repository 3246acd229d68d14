#!/usr/bin/env python3
"""How long a virtual machine stood still while a command ran: time in which neither the
command, nor any other process, nor the idle loop of any CPU was sampled.

    python3 bench/vm_pauses.py [--control] -- COMMAND [ARGS...]
    python3 bench/vm_pauses.py --control-only [--seconds 3]

`perf record -a` samples every CPU about every millisecond (cpu-clock), the idle loop included,
so on a running machine every 10 ms slot of the run holds about 10 samples per CPU. A slot with
none is time the host did not run this guest's CPUs at all, one with under half of them was
partly paused; the samples missing from all slots together, as a share of what running CPUs
give, estimate the time the guest stood still (sampling jitter alone misses about 1 %). The command's output goes to /dev/null; its exit status is kept.

`--control` also runs two busy loops for as long as the command took (one per core of the
development machine), and `--control-only` runs just those: a machine that pauses the busy
loops too takes CPU time from every guest, while one that pauses only the command does so for
what the command asks of it (bench/RESULTS.md: writes to the virtual disk). Needs Linux and
`perf` (apt install linux-perf) allowed to sample all CPUs; no Python packages.
"""

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time

SLOT = 0.01
HZ = 997


def record(command, data):
    """Run `command` under `perf record -a`; its wall seconds and exit status."""
    start = time.monotonic()
    with open(os.devnull, "wb") as null:
        rc = subprocess.call(
            ["perf", "record", "-q", "-a", "-F", str(HZ), "-k", "CLOCK_MONOTONIC", "-o", data, "--", *command],
            stdout=null,
            stderr=null,
        )
    return time.monotonic() - start, rc


def slots(data):
    """Samples per 10 ms slot, from the first sample to the last."""
    text = subprocess.run(
        ["perf", "script", "-i", data, "-F", "time"], capture_output=True, text=True, check=False
    ).stdout
    times = [float(t.strip().rstrip(":")) for t in text.split() if t.strip().rstrip(":").replace(".", "", 1).isdigit()]
    if not times:
        raise SystemExit("perf recorded no samples: is perf allowed to sample all CPUs (perf_event_paranoid)?")
    first = min(times)
    count = collections.Counter(int((t - first) / SLOT) for t in times)
    # The last slot is cut short where the recording ended: it would count as a pause.
    return [count[i] for i in range(max(count))]


def report(name, counts):
    if len(counts) < 20:
        print(f"{name}: under 0.2 s sampled, too short to tell pauses from the sampling's jitter")
        return
    cpus = os.cpu_count() or 1
    full = HZ * SLOT * cpus
    empty = sum(1 for c in counts if c == 0)
    partial = sum(1 for c in counts if 0 < c < full / 2)
    span = len(counts) * SLOT
    # Samples short of what running CPUs give, as a share: the time the guest's CPUs stood still.
    missing = sum(max(0.0, full - c) for c in counts) / (full * len(counts))
    print(
        f"{name}: {span:.2f} s on {cpus} CPUs; samples missing {100 * missing:.1f} % of the CPUs' time; "
        f"10 ms slots paused {empty} ({100 * empty / len(counts):.1f} %), "
        f"half-paused {partial} ({100 * partial / len(counts):.1f} %)"
    )
    line = "".join("." if c == 0 else ("-" if c < full / 2 else "#") for c in counts)
    for i in range(0, len(line), 100):
        print("  " + line[i : i + 100])


BUSY = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end: pass\n"


def control(seconds, work):
    """Two busy loops for `seconds`, as a command for `record`."""
    script = os.path.join(work, "busy.py")
    with open(script, "w") as f:
        f.write(BUSY.format(s=seconds))
    return ["sh", "-c", f'python3 "{script}" & python3 "{script}"; wait']


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--control", action="store_true", help="also run two busy loops as long as the command")
    parser.add_argument("--control-only", action="store_true", help="run only the busy loops")
    parser.add_argument("--seconds", type=float, default=3.0, help="busy loops' length with --control-only")
    parser.add_argument("command", nargs="*", help="the command to watch (after --)")
    args = parser.parse_args()
    if not args.command and not args.control_only:
        parser.error("give a command after --, or --control-only")
    if shutil.which("perf") is None:
        raise SystemExit("perf is not installed (apt install linux-perf)")
    rc = 0
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "perf.data")
        seconds = args.seconds
        if args.command and not args.control_only:
            seconds, rc = record(args.command, data)
            report(f"command (exit {rc})", slots(data))
        if args.control or args.control_only:
            record(control(seconds, work), data)
            report("two busy loops", slots(data))
    sys.exit(rc)


if __name__ == "__main__":
    main()
