"""The whole pipeline, cold: wall time and peak memory of every stage, and the notebook's way.

    python benchmarks/pipeline_speed.py                  # both sides, full MNIST (40-60 min)
    python benchmarks/pipeline_speed.py --side repro     # one plain `dvc repro`, as a user runs it
    python benchmarks/pipeline_speed.py --side pipeline  # each stage its own `dvc repro`
    python benchmarks/pipeline_speed.py --side pipeline --reuse-models   # the other stages only

``both`` (the default): ``repro``, then ``notebook``, and ``pipeline / notebook: N.NNx``.

``pipeline``: a fresh ``git clone`` of this checkout at HEAD (or ``--rev``) in a temporary
folder (empty DVC cache, so nothing is skipped), where every stage runs as ``dvc repro
--single-item --force <stage>`` in the order ``dvc repro --dry`` gives, so each row includes
DVC's own start-up, hashing and caching of that stage. ``--reuse-models`` copies ``models/``
and ``reports/train/`` from this workspace and marks the trainings done (``dvc commit``), to
time everything else in a minute.

``repro``: one plain ``dvc repro`` in a fresh clone (empty DVC cache), as a new user runs it:
its wall time, each stage's share (from one ``Running stage`` line to the next, DVC's caching
included), the peak memory of the tree, and the log checked as issue 14 asks: ERROR lines,
lines over 200 characters (split on newlines only, so carriage-return redraws count as one
line) and epoch lines.

``notebook``: ``benchmarks/notebook_way.py``, one plain Python process doing the same work the
notebook's way: NumPy arrays into ``model.fit(..., validation_split=0.1)`` for the four models
and every replicate seed (same builders, epochs, seeds, batch size and optimiser as
params.yaml), ``model.evaluate`` on the test set, the three convolution demos with
``scipy.ndimage.convolve`` and matplotlib figures of the cnn's filters and feature maps. No DVC,
no MLflow, no report. Only a reference for what the pipeline's extra work costs.

Peak memory is the largest resident set of the process tree (``wait4``'s ``ru_maxrss``: the
stage's Python process, or DVC itself when larger). MNIST comes from ``MNIST_LOCAL`` (or
``--mnist``) when set, else from the network as in ``make repro``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REUSED = "(trainings reused)"
TRAININGS = ("train@", "replicate@")  # the stages that fit a network


def measured(cmd: list[str], cwd: Path, env: dict[str, str], log) -> tuple[float, float, int]:
    """Run ``cmd``; its wall seconds, the peak RSS of its process tree in MiB, its exit code."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, proc.returncode


def stage_order(clone: Path, env: dict[str, str]) -> list[str]:
    """The stages ``dvc repro`` would run, in its order."""
    dry = subprocess.run(
        [str(BIN / "dvc"), "repro", "--dry", "--force"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return re.findall(r"^Running stage '([^']+)':", dry, flags=re.M)


def fresh_clone(folder: Path, rev: str) -> Path:
    """A ``git clone`` of this checkout in ``folder``, at ``rev`` (empty DVC cache)."""
    clone = folder / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "checkout", "--quiet", rev], cwd=clone, check=True)
    return clone


def pipeline(args: argparse.Namespace, env: dict[str, str], log) -> list[tuple[str, float, float]]:
    """Every stage of a fresh clone, one ``dvc repro --single-item`` each."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="pipeline-speed-") as tmp:
        clone = fresh_clone(Path(tmp), args.rev)
        order = stage_order(clone, env)
        if args.reuse_models:
            for folder in ("models", "reports/train"):
                shutil.copytree(ROOT / folder, clone / folder, dirs_exist_ok=True)
        for stage in order:
            if args.reuse_models and stage.startswith("train@"):
                if not any(name == REUSED for name, _, _ in rows):
                    # Preprocess has run: the copied trainings' deps exist, so commit them.
                    trains = [s for s in order if s.startswith("train@")]
                    commit = [str(BIN / "dvc"), "commit", "--force", "--quiet", *trains]
                    subprocess.run(commit, cwd=clone, env=env, check=True, stdout=log)
                    rows.append((REUSED, 0.0, 0.0))
                continue
            # --force: a stage whose outputs git already holds for these inputs runs as well.
            cmd = [str(BIN / "dvc"), "repro", "--single-item", "--force", stage]
            print(f"  {stage} ...", end="", flush=True)
            wall, rss, rc = measured(cmd, clone, env, log)
            print(f" {wall:.1f} s, {rss:.0f} MiB")
            if rc != 0:
                raise SystemExit(f"stage {stage} failed (exit {rc}); see {args.log}")
            rows.append((stage, wall, rss))
    return rows


STAGE_LINE = re.compile(rb"^Running stage '([^']+)':")
EPOCH_LINE = re.compile(rb"Epoch \d+/\d+")
# An ERROR-level line: Python logging's or absl's (TensorFlow's "E0000 ..." lines).
ERROR_LINE = re.compile(rb"(^|\s)ERROR\b|^E\d{4} ")
LONG_LINE = 200


def whole_repro(args: argparse.Namespace, env: dict[str, str], log) -> dict:
    """One ``dvc repro`` in a fresh clone: wall time, per-stage shares, peak RSS, log checks."""
    with tempfile.TemporaryDirectory(prefix="pipeline-repro-") as tmp:
        clone = fresh_clone(Path(tmp), args.rev)
        cmd = [str(BIN / "dvc"), "repro"]
        print("  dvc repro ...", flush=True)
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=clone,
            env=env | {"PYTHONUNBUFFERED": "1"},  # DVC's "Running stage" lines as they happen
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        starts: list[tuple[str, float]] = []
        checks = {"errors": 0, "long": 0, "epochs": 0}
        assert proc.stdout is not None
        for line in proc.stdout:  # binary: split on b"\n" only
            log.buffer.write(line)
            found = STAGE_LINE.match(line)
            if found:
                starts.append((found.group(1).decode(), time.perf_counter() - start))
                print(f"    {starts[-1][1]:6.1f} s  {starts[-1][0]}", flush=True)
            text = line.rstrip(b"\r\n")
            checks["errors"] += bool(ERROR_LINE.search(text))
            checks["long"] += len(text) > LONG_LINE
            checks["epochs"] += bool(EPOCH_LINE.search(text))
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"dvc repro failed; see {args.log}")
    ends = [t for _, t in starts[1:]] + [wall]
    stages = [(name, end - begin) for (name, begin), end in zip(starts, ends, strict=True)]
    return {"wall": wall, "rss": usage.ru_maxrss / 1024, "stages": stages, **checks}


def print_whole(result: dict) -> None:
    print("\n| stage (one `dvc repro`) | s |\n|---|---:|")
    for name, seconds in result["stages"]:
        print(f"| {name} | {seconds:.1f} |")
    train = sum(s for n, s in result["stages"] if n.startswith(TRAININGS))
    print(f"| **cold `dvc repro`** | **{result['wall']:.1f}** |")
    print(f"| trainings / the other stages | {train:.1f} / {result['wall'] - train:.1f} |")
    print(f"\npeak RSS of any process: {result['rss']:.0f} MiB")
    print(
        f"log: {result['errors']} ERROR lines, {result['long']} lines over {LONG_LINE} "
        f"characters, {result['epochs']} epoch lines"
    )


def notebook(args: argparse.Namespace, env: dict[str, str], log) -> tuple[float, float, dict]:
    """The notebook's work in one plain process."""
    mnist = args.mnist or (ROOT / "data/raw/mnist.npz")
    if not Path(mnist).exists():
        raise SystemExit(
            f"{mnist} not found: pass --mnist or set MNIST_LOCAL (or dvc repro download)"
        )
    with tempfile.TemporaryDirectory(prefix="notebook-speed-") as tmp:
        cmd = [sys.executable, str(Path(__file__).with_name("notebook_way.py")), str(mnist), tmp]
        print("  notebook script ...", end="", flush=True)
        wall, rss, rc = measured(cmd, ROOT, env, log)
        print(f" {wall:.1f} s, {rss:.0f} MiB")
        if rc != 0:
            raise SystemExit(f"the notebook script failed (exit {rc}); see {args.log}")
        result = json.loads((Path(tmp) / "result.json").read_text())
    return wall, rss, result


def print_notebook(nb: tuple[float, float, dict]) -> None:
    print(f"| notebook's way, one process | {nb[0]:.1f} | {nb[1]:.0f} |")
    for name, got in nb[2].items():
        if isinstance(got, dict):
            print(
                f"| notebook {name}: fit + evaluate | {got['seconds']:.1f} | "
                f"(test accuracy {got['test_accuracy']:.4f}) |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", choices=("both", "pipeline", "notebook", "repro"), default="both")
    parser.add_argument("--reuse-models", action="store_true", help="skip the trainings")
    parser.add_argument("--rev", default="HEAD", help="the commit whose pipeline runs")
    parser.add_argument("--mnist", default=os.environ.get("MNIST_LOCAL"), help="a local mnist.npz")
    parser.add_argument("--log", default="pipeline_speed.log", help="the stages' own output")
    args = parser.parse_args()
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    if args.mnist:
        env["MNIST_LOCAL"] = str(Path(args.mnist).resolve())
    if args.side in ("repro", "both"):
        with open(args.log, "w") as log:
            whole = whole_repro(args, env, log)
            nb = notebook(args, env, log) if args.side == "both" else None
        print_whole(whole)
        if nb:
            print_notebook(nb)
            print(f"\npipeline / notebook: {whole['wall'] / nb[0]:.2f}x")
        return
    with open(args.log, "w") as log:
        rows = pipeline(args, env, log) if args.side != "notebook" else []
        nb = notebook(args, env, log) if args.side != "pipeline" else None
    print("\n| stage | wall s | peak RSS MiB |\n|---|---:|---:|")
    for name, wall, rss in rows:
        print(f"| {name} | {wall:.1f} | {rss:.0f} |")
    if rows:
        train = sum(w for n, w, _ in rows if n.startswith(TRAININGS))
        other = sum(w for n, w, _ in rows if not n.startswith(TRAININGS))
        print(f"| **all stages** | **{train + other:.1f}** | {max(r for _, _, r in rows):.0f} |")
        print(f"| trainings / the other stages | {train:.1f} / {other:.1f} | |")
    if nb:
        print_notebook(nb)
        if rows and not args.reuse_models:
            print(f"\npipeline / notebook: {(train + other) / nb[0]:.2f}x")


if __name__ == "__main__":
    main()
