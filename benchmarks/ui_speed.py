"""How fast `mlflow ui` answers on this machine, by worker count, on a copy of the project's store.

`make ui` runs `mlflow ui`, whose default is four uvicorn worker processes. Each imports MLflow
(several seconds of CPU) and its supervisor restarts a worker that misses its health check, so
on a busy 2-core machine they can take turns starting instead of answering. This starts the
server with each worker count in turn (ABAB..., ``--repeats`` rounds), optionally beside
``--busy`` processes that keep a core each busy (as a running `dvc repro` does), and measures
from the start to the first answer of the UI's page, then one search of the runs table and one
of the registry, as a browser opening the UI asks for them. It prints the medians per worker
count, the ratio against the first count, and the worker starts seen in the server's log.
Nothing in the project is written: the store is copied to a temporary folder.

    python benchmarks/ui_speed.py [--workers 4,1] [--repeats 3] [--busy 2] [--store mlflow.db]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MLFLOW = Path(sys.executable).parent / "mlflow"
START_TIMEOUT = 600
WORKER_STARTED = "Started server process"  # uvicorn's line, once per worker process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def burn(stop_at: float) -> None:
    while time.monotonic() < stop_at:
        sum(i * i for i in range(10_000))


def get(url: str, payload: dict | None = None, timeout: float = 5) -> int:
    data = None if payload is None else json.dumps(payload).encode()
    headers = {} if payload is None else {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()
        return response.status


def experiment_ids(base: str) -> list[str]:
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/experiments/search",
        data=json.dumps({"max_results": 100}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return [e["experiment_id"] for e in json.loads(response.read()).get("experiments", [])]


def stop(proc: subprocess.Popen) -> None:
    """The server and its workers (its own process group): SIGTERM, SIGKILL after 30 s."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, None)):
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def one_start(store: Path, workers: int, log: Path) -> dict[str, float]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [str(MLFLOW), "ui", "--backend-store-uri", f"sqlite:///{store}", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", str(workers)]
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            try:
                if get(f"{base}/", timeout=5) == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() - start > START_TIMEOUT:
                raise SystemExit(f"mlflow ui did not answer:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        page = time.monotonic() - start
        ids = experiment_ids(base)
        get(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": ids}, timeout=300)
        runs = time.monotonic() - start
        get(f"{base}/api/2.0/mlflow/registered-models/search", timeout=300)
        registry = time.monotonic() - start
    finally:
        stop(proc)
    starts = log.read_text().count(WORKER_STARTED)
    return {"page": page, "runs": runs, "registry": registry, "worker_starts": starts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="4,1", help="worker counts, compared in turn")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=0, help="CPU-burning processes beside it")
    parser.add_argument("--store", type=Path, default=ROOT / "mlflow.db")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    if not args.store.is_file():
        raise SystemExit(f"{args.store} does not exist: run `make repro` first, or pass --store.")

    results: dict[int, list[dict[str, float]]] = {w: [] for w in counts}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "mlflow.db"
        shutil.copy2(args.store, store)
        burners = [
            multiprocessing.Process(target=burn, args=(time.monotonic() + 3600,), daemon=True)
            for _ in range(args.busy)
        ]
        for b in burners:
            b.start()
        try:
            for round_ in range(args.repeats):
                order = counts if round_ % 2 == 0 else counts[::-1]
                for w in order:
                    found = one_start(store, w, Path(tmp) / f"ui-{w}-{round_}.log")
                    results[w].append(found)
                    print(
                        f"round {round_ + 1}, {w} worker(s): page {found['page']:.1f} s, "
                        f"runs {found['runs']:.1f} s, registry {found['registry']:.1f} s, "
                        f"{found['worker_starts']:.0f} worker starts",
                        flush=True,
                    )
        finally:
            for b in burners:
                b.terminate()

    print(f"\nmedians over {args.repeats} starts, {args.busy} busy process(es) beside:")
    first = counts[0]
    for w in counts:
        med = {k: statistics.median(r[k] for r in results[w]) for k in results[w][0]}
        ratio = med["registry"] / statistics.median(r["registry"] for r in results[first])
        print(
            f"  --workers {w}: page {med['page']:.1f} s, runs table {med['runs']:.1f} s, "
            f"registry {med['registry']:.1f} s, {med['worker_starts']:.0f} worker starts; "
            f"all answered / --workers {first}: {ratio:.2f}x"
        )


if __name__ == "__main__":
    main()
