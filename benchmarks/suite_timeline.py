"""Where a test run's wall time goes: how busy each pytest-xdist worker and the machine's CPUs
were, and which tests ran when.

    python benchmarks/suite_timeline.py                    # the quick tests, as `make test-quick`
    python benchmarks/suite_timeline.py -- -m ""           # every test, as `make test`
    python benchmarks/suite_timeline.py --longer-than 10 -- -m "" tests/project

Runs pytest in this checkout with the arguments after ``--`` (pyproject.toml's options apply,
so ``-n logical`` as usual) and this module as a plugin: every worker appends each test's start
and end to a log. Meanwhile the whole machine's CPU use is sampled from ``/proc/stat`` every
``--interval`` seconds: that counts what ``/usr/bin/time`` misses, the servers and DVC queue
workers that tests start in their own sessions. Prints pytest's closing line, then per worker
the seconds spent inside tests and the gaps between them, the CPU's mean use and the moments it
fell under 80 %, and the tests longer than ``--longer-than`` seconds on a time line.

Run it with nothing else on the machine: the CPU figures are the whole machine's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG_ENV = "SUITE_TIMELINE_LOG"


def _log(nodeid: str, event: str) -> None:
    """Append one test's start or end; under xdist the controller logs every test again, as
    ``main``, and :func:`summarise` keeps the workers' own lines."""
    path = os.environ.get(LOG_ENV)
    if path:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"w": worker, "id": nodeid, "ev": event, "t": time.time()}) + "\n")


def pytest_runtest_logstart(nodeid):
    _log(nodeid, "start")


def pytest_runtest_logfinish(nodeid):
    _log(nodeid, "end")


def cpu_times() -> tuple[int, int]:
    """All CPUs' (busy, total) jiffies since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def sample_cpu(interval: float, stop: threading.Event, samples: list[tuple[float, float]]):
    busy0, total0 = cpu_times()
    while not stop.wait(interval):
        busy, total = cpu_times()
        if total > total0:
            samples.append((time.time(), 100.0 * (busy - busy0) / (total - total0)))
        busy0, total0 = busy, total


def summarise(events: list[dict], samples: list[tuple[float, float]], longer_than: float) -> str:
    """The per-worker, CPU and long-test report of one run."""
    events = [e for e in events if e["w"] != "main"] or events
    if not events:
        return "no test ran"
    t0 = min(e["t"] for e in events)
    lines = [f"first test start to last test end: {max(e['t'] for e in events) - t0:.1f} s"]
    per_worker: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        per_worker[e["w"]].append(e)
    spans = []
    for worker, evs in sorted(per_worker.items()):
        evs.sort(key=lambda e: e["t"])
        started: dict[str, float] = {}
        busy, gaps, last_end = 0.0, [], None
        for e in evs:
            if e["ev"] == "start":
                started[e["id"]] = e["t"]
                if last_end is not None and e["t"] - last_end > 1.0:
                    gaps.append((last_end - t0, e["t"] - last_end))
            elif e["id"] in started:
                begin = started.pop(e["id"])
                busy += e["t"] - begin
                last_end = e["t"]
                spans.append((begin - t0, e["t"] - t0, worker, e["id"]))
        end = (last_end or t0) - t0
        gap_text = ", ".join(f"{g:.0f} s at {at:.0f} s" for at, g in gaps) or "none over 1 s"
        lines.append(
            f"{worker}: in tests {busy:.1f} s of {end:.1f} s until its last test ended; "
            f"gaps: {gap_text}"
        )
    if samples:
        use = [u for _, u in samples]
        low = [(t - t0, u) for t, u in samples if u < 80]
        lines.append(
            f"CPU, whole machine: mean {statistics.fmean(use):.1f} % busy over {len(use)} "
            f"samples; under 80 % in {len(low)}"
            + (": " + ", ".join(f"{at:.0f} s ({u:.0f} %)" for at, u in low[:40]) if low else "")
        )
    long = sorted(s for s in spans if s[1] - s[0] > longer_than)
    if long:
        lines.append(f"tests longer than {longer_than:g} s (start, end, worker, test):")
        lines += [f"  {a:6.0f} {b:6.0f}  {w}  {nodeid}" for a, b, w, nodeid in long]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=2.0, help="CPU sample period, s")
    parser.add_argument("--longer-than", type=float, default=15.0, help="list tests over this, s")
    parser.add_argument("pytest_args", nargs="*", help="after --: pytest's own arguments")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="suite-timeline-") as tmp:
        log = Path(tmp) / "events.jsonl"
        env = {
            **os.environ,
            LOG_ENV: str(log),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        samples: list[tuple[float, float]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_cpu, args=(args.interval, stop, samples))
        sampler.start()
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-p",
                    "benchmarks.suite_timeline",
                    "-q",
                    *args.pytest_args,
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
        finally:
            stop.set()
            sampler.join()
        wall = time.perf_counter() - start
        closing = [line for line in proc.stdout.splitlines() if line.strip()][-1:]
        print(*closing, f"pytest exit {proc.returncode}, {wall:.1f} s wall", sep="\n")
        events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        print(summarise(events, samples, args.longer_than))
        if proc.returncode not in (0, 5):
            print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
        return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
