#!/usr/bin/env python3
"""How long a virtual machine stood still while a command ran: time in which neither the
command, nor any other process, nor the idle loop of any CPU was sampled.

    python3 bench/vm_pauses.py [--control] -- COMMAND [ARGS...]
    python3 bench/vm_pauses.py --control-only [--seconds 3]

`perf record -a -e cpu-clock` samples every CPU about every millisecond from a timer, the idle
loop included, so on a running machine every 10 ms slot of the run holds about 10 samples per
CPU. A slot with none is time the host ran none of this guest's CPUs; one with under half of
them was mostly paused (a pause of one CPU of two leaves half, so it counts only in the total).
The samples missing from all slots together, as a share of what running CPUs give, estimate
the time the guest's CPUs stood still. The command's own output goes to /dev/null, perf's
messages to stderr; the command's exit status is this script's.

`--control` also runs one busy loop per CPU for as long as the command was sampled, and
`--control-only` runs just those: the busy loops give the machine's floor (what it takes from
any guest), and what a command loses above it the host took for what the command asked of it
(bench/RESULTS.md: writes to the virtual disk). Needs Linux and `perf` (apt install
linux-perf) allowed to sample all CPUs; no Python packages.
"""

import argparse
import collections
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

SLOT = 0.01
HZ = 997


def record(command, data):
    """Run `command` (its output to /dev/null) under `perf record`; its exit status."""
    quiet = ["sh", "-c", 'exec "$@" > /dev/null 2>&1', "sh", *command]
    perf = ["perf", "record", "-q", "-a", "-e", "cpu-clock", "-F", str(HZ), "-k", "CLOCK_MONOTONIC"]
    # No build-id pass after the run: it writes to ~/.debug, disk writes of the tool's own.
    return subprocess.call([*perf, "--no-buildid", "--no-buildid-cache", "-o", data, "--", *quiet])


def slots(data):
    """Samples per 10 ms slot from the first sample to the last, and the CPUs sampled."""
    out = subprocess.run(["perf", "script", "-i", data, "-F", "cpu,time"], capture_output=True, text=True)
    times, cpus = [], set()
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].startswith("["):
            cpus.add(fields[0])
            times.append(float(fields[1].rstrip(":")))
    if not times:
        sys.stderr.write(out.stderr)
        raise SystemExit("perf recorded no samples: is perf allowed to sample all CPUs (perf_event_paranoid)?")
    first = min(times)
    count = collections.Counter(int((t - first) / SLOT) for t in times)
    # The last slot is cut short where the recording ended: it would count as a pause.
    return [count[i] for i in range(max(count))], len(cpus)


def report(name, counts, cpus):
    if len(counts) < 20:
        print(f"{name}: under 0.2 s sampled, too short to tell pauses from the sampling's jitter")
        return
    full = HZ * SLOT * cpus
    empty = sum(1 for c in counts if c == 0)
    mostly = sum(1 for c in counts if 0 < c < full / 2)
    missing = max(0.0, 1.0 - sum(counts) / (full * len(counts)))
    print(
        f"{name}: {len(counts) * SLOT:.2f} s on {cpus} CPUs; samples missing {100 * missing:.1f} % of the CPUs' time; "
        f"10 ms slots with no sample {empty} ({100 * empty / len(counts):.1f} %), "
        f"under half {mostly} ({100 * mostly / len(counts):.1f} %)"
    )
    line = "".join("." if c == 0 else ("-" if c < full / 2 else "#") for c in counts)
    for i in range(0, len(line), 100):
        print("  " + line[i : i + 100])


BUSY = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end: pass\n"


def control(seconds, cpus, work):
    """One busy loop per CPU for `seconds`, as a command for `record`."""
    script = os.path.join(work, "busy.py")
    with open(script, "w") as f:
        f.write(BUSY.format(s=seconds))
    loop = f"{shlex.quote(sys.executable)} {shlex.quote(script)}"
    return ["sh", "-c", " & ".join([loop] * cpus) + "; wait"]


def status(rc):
    """A child's status as a shell reports it (a signal's as 128 + its number)."""
    return 128 - rc if rc < 0 else rc


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--control", action="store_true", help="also run busy loops as long as the command")
    parser.add_argument("--control-only", action="store_true", help="run only the busy loops")
    parser.add_argument("--seconds", type=float, help="the busy loops' length with --control-only (default 3)")
    parser.add_argument("command", nargs="*", help="the command to watch (after --)")
    args = parser.parse_args()
    if args.control_only and args.command:
        parser.error("--control-only runs no command")
    if not args.control_only and not args.command:
        parser.error("give a command after --, or --control-only")
    if args.seconds is not None and not args.control_only:
        parser.error("--seconds is for --control-only (--control lasts as long as the command)")
    if args.seconds is not None and not args.seconds > 0:
        parser.error("--seconds must be above 0")
    if shutil.which("perf") is None:
        raise SystemExit("perf is not installed (apt install linux-perf)")
    rc = 0
    # perf.data in memory where possible: writes to the disk are what this measures.
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    if shm is None:
        print("no /dev/shm: perf.data goes to the temporary folder, whose writes may add pauses", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=shm) as work:
        data = os.path.join(work, "perf.data")
        seconds = 3.0 if args.seconds is None else args.seconds
        cpus = os.cpu_count() or 1
        if args.command:
            rc = record(args.command, data)
            counts, cpus = slots(data)
            report(f"command (exit {status(rc)})", counts, cpus)
            seconds = len(counts) * SLOT
        if args.control or args.control_only:
            try:
                loops = record(control(seconds, cpus, work), data)
                if loops != 0:
                    print(f"the busy loops exited {status(loops)}: their figure may be short", file=sys.stderr)
                report("busy loops", *slots(data))
            except SystemExit as e:
                print(f"the busy loops could not be measured: {e}", file=sys.stderr)
    sys.exit(status(rc))


if __name__ == "__main__":
    main()
