"""What the team server's credential cache buys: authenticated MLflow calls per second with
MLflow's basic-auth app checking every request's password (``auth_cache_ttl_seconds = 0``,
MLflow's default) and with the stack's cache (``scripts/stack_access.py``
``AUTH_CACHE_TTL_S``), side by side in one run.

Each round starts the real stack (PostgreSQL, ``mlflow server --app-name basic-auth``,
SeaweedFS) in a temporary folder with one setting, makes ``--calls`` calls as the member
(``experiments/get-by-name`` then ``runs/search``, as a training's client does), times them and
stops the stack; the settings alternate (ABAB...) for ``--repeats`` rounds each. Prints the
median calls per second per setting and their ratio.

    python benchmarks/team_auth.py [--calls 200] [--repeats 2]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import stack  # noqa: E402
import stack_access  # noqa: E402


def calls_per_second(url: str, password: str, experiment: str, calls: int) -> float:
    pair = base64.b64encode(f"{stack_access.MEMBER}:{password}".encode()).decode()
    headers = {"Authorization": f"Basic {pair}", "Content-Type": "application/json"}

    def call(path: str, body: dict | None = None, **query: str) -> dict:
        req = urllib.request.Request(
            f"{url}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}",
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
            method="GET" if body is None else "POST",
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"{}")

    exp_id = call("experiments/get-by-name", experiment_name=experiment)["experiment"][
        "experiment_id"
    ]
    start = time.perf_counter()
    for i in range(calls):
        if i % 2:
            call("runs/search", {"experiment_ids": [exp_id], "max_results": 10})
        else:
            call("experiments/get-by-name", experiment_name=experiment)
    return calls / (time.perf_counter() - start)


def one_round(ttl: int, calls: int) -> float:
    stack_access.AUTH_CACHE_TTL_S = ttl
    with tempfile.TemporaryDirectory(prefix="intro-cnn-bench-stack-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)  # as root, PostgreSQL runs as the postgres user
        services = stack.Stack(folder)
        try:
            state = services.up()
            secret = services.secrets()
            from intro_cnn import config

            experiment = config.load_params(ROOT / config.PARAMS_FILE).train.experiment
            return calls_per_second(
                state["mlflow"]["url"], secret["mlflow_member_password"], experiment, calls
            )
        finally:
            services.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    settings = {"no cache (MLflow's default)": 0, "stack's cache": stack_access.AUTH_CACHE_TTL_S}
    seen: dict[str, list[float]] = {name: [] for name in settings}
    for r in range(args.repeats):
        for name, ttl in settings.items():
            rate = one_round(ttl, args.calls)
            seen[name].append(rate)
            print(f"round {r + 1}, {name}: {rate:.1f} calls/s", flush=True)
    medians = {name: statistics.median(v) for name, v in seen.items()}
    base, cached = medians.values()
    for name, value in medians.items():
        print(f"{name:28} {value:7.1f} calls/s (median of {args.repeats})")
    print(f"cached / uncached: {cached / base:.2f}x")


if __name__ == "__main__":
    main()
