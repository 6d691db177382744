"""What is bit-identical where: one ``cnn_small`` training under several CPU set-ups.

    python benchmarks/determinism.py                          # every configuration, 2 rounds
    python benchmarks/determinism.py --rounds 3 --configs default,avx2
    python benchmarks/determinism.py --no-probe               # skip the oneDNN kernel probe

Each configuration trains ``cnn_small`` once per round in a fresh process, as the pipeline does
(``configure_tensorflow(seed, deterministic=True)``, ``build_model(name, precision)``,
``intro_cnn.training.fitting.fit`` with params.yaml's ``train`` section), on a subset of the
canonical MNIST (``--mnist``, Keras layout) split as the preprocess stage splits it: the first
12,800 rows of the training split, the first 1,280 of its validation split (the last 10 % of the
training rows), 2 epochs, batch 128, Adam at 1e-3, seed 1. A fresh process per run, because
thread counts and ``ONEDNN_MAX_CPU_ISA`` only act if set before TensorFlow loads.

Configurations (``CONFIGS``): ``default`` and ``default_again`` (the same set-up, to show that
a rerun in another process is identical), ``threads1`` (one intra-op thread), ``avx2`` and
``avx512_core`` (oneDNN capped at that instruction set), ``bf16`` (``mixed_bfloat16``) and
``onednn_off`` (``TF_ENABLE_ONEDNN_OPTS=0``); all float32 but ``bf16``. The rounds are
interleaved (ABC…CBA…), so that a busy neighbour on a small shared machine slows every
configuration alike; timings are therefore reported only as ratios to ``default``.

First, unless ``--no-probe``, each configuration runs one short training with
``ONEDNN_VERBOSE=1`` and prints the instruction set oneDNN reports and the kernels it ran (its
own timing is not used). Then one line per run (fit seconds, and seconds of the last epoch,
which has no graph tracing), and a table: configuration, first 12 hex digits of the SHA-256 of
all final weights (``model.get_weights()`` bytes, in order), whether every run gave that digest,
final validation accuracy, accuracy on the first 2,000 test images, the largest absolute weight
difference from ``default``, the fit and last-epoch seconds as ratios of ``default``'s (medians
over the rounds); last, which configurations share a digest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MNIST = Path("/work/shared/data/mnist/mnist.npz")
MODEL = "cnn_small"
N_TRAIN, N_VAL, N_TEST = 12_800, 1_280, 2_000
EPOCHS, BATCH, LR, SEED = 2, 128, 1e-3, 1

# name -> (environment added before TensorFlow loads, Keras dtype policy, intra-op threads)
CONFIGS: dict[str, tuple[dict[str, str], str, int | None]] = {
    "default": ({}, "float32", None),
    "default_again": ({}, "float32", None),
    "threads1": ({}, "float32", 1),
    "avx2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "float32", None),
    "avx512_core": ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, "float32", None),
    "bf16": ({}, "mixed_bfloat16", None),
    "onednn_off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "float32", None),
}


def subset(mnist: Path, n_train: int, n_val: int) -> dict:
    """The preprocess stage's split of the raw MNIST, cut to the first rows of each split."""
    from intro_cnn import config
    from intro_cnn.data.preprocess import split_raw

    data = split_raw(mnist, config.load_params().preprocess.validation_split)
    cut = {"train": n_train, "val": n_val, "test": N_TEST}
    return {k: v[: cut[k.split("_")[1]]] for k, v in data.items()}


def trial(name: str, mnist: Path, n_train: int, n_val: int, epochs: int, save: Path | None) -> dict:
    """Train once in this process under configuration ``name``; return its results (and
    save the final weights to ``save``, an .npz, if given)."""
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    _, precision, threads = CONFIGS[name]
    from intro_cnn import config
    from intro_cnn.runtime import tf_import

    with tf_import.importing_tensorflow():
        import tensorflow as tf
    if threads:  # before TensorFlow runs any op
        tf.config.threading.set_intra_op_parallelism_threads(threads)

    from intro_cnn.data.dataset import one_hot
    from intro_cnn.models import build_model
    from intro_cnn.training.fitting import fit
    from intro_cnn.training.tf_settings import configure_tensorflow

    params = config.load_params()
    cfg = replace(params.model(MODEL), epochs=epochs, batch_size=BATCH, learning_rate=LR)
    cfg = replace(cfg, optimizer="adam")
    train_cfg = replace(params.train, deterministic=True, precision=precision)
    data = subset(mnist, n_train, n_val)
    configure_tensorflow(SEED, train_cfg.deterministic)  # seeds before the weights are drawn
    model = build_model(MODEL, precision)
    result = fit(model, data, cfg, train_cfg, SEED, verbose=0)
    weights = model.get_weights()
    digest = hashlib.sha256(b"".join(w.tobytes() for w in weights)).hexdigest()
    if save:
        np.savez(save, *weights)
    _, test_acc = model.evaluate(
        data["x_test"], one_hot(data["y_test"]), batch_size=1024, verbose=0
    )
    return {
        "config": name,
        "sha256": digest,
        "val_accuracy": result.history[-1]["val_accuracy"],
        "test_accuracy": float(test_acc),
        "seconds": result.wall_seconds,
        "epoch_seconds": [row["seconds"] for row in result.history],
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "steps_per_execution": train_cfg.steps_per_execution,
    }


def launch(
    name: str, args: argparse.Namespace, save: Path | None = None, probe: bool = False
) -> tuple[dict | None, str]:
    """One fresh process for one training; returns (result or None, its stdout + stderr)."""
    env_add, _, _ = CONFIGS[name]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env_add}
    cmd = [sys.executable, __file__, "--trial", name, "--mnist", str(args.mnist)]
    cmd += ["--save", str(save)] if save else []
    if probe:  # a short training, oneDNN listing every kernel it runs
        env["ONEDNN_VERBOSE"] = "1"
        cmd += ["--n-train", "256", "--n-val", "128", "--epochs", "1"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    result = json.loads(lines[-1][len("RESULT ") :]) if out.returncode == 0 and lines else None
    return result, out.stdout + out.stderr


def max_difference(a: Path, b: Path) -> float:
    """Largest absolute difference between two saved sets of weights."""
    with np.load(a) as wa, np.load(b) as wb:
        return max(float(np.max(np.abs(wa[k] - wb[k]))) for k in wa.files)


def kernels(log: str) -> str:
    """oneDNN's reported ISA and the kernels of an ``ONEDNN_VERBOSE=1`` log, in brief."""
    isa, used = "?", defaultdict(set)
    for line in log.splitlines():
        fields = line.split(",")
        if line.startswith("onednn_verbose") and "isa:" in line:
            isa = line.split("isa:", 1)[1]
        elif line.startswith("onednn_verbose") and len(fields) > 6 and fields[3] == "exec":
            primitive, impl, prop = fields[5], fields[6] or "-", fields[7]
            if primitive != "reorder":
                used[f"{primitive}/{prop}"].add(impl)
    listed = "; ".join(f"{k} {'+'.join(sorted(v))}" for k, v in sorted(used.items()))
    return f"isa: {isa}\n    kernels: {listed or 'none through oneDNN'}"


def main(args: argparse.Namespace) -> None:
    names = args.configs.split(",")
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        sys.exit(f"unknown configuration(s) {unknown}; valid: {', '.join(CONFIGS)}")
    print(f"{MODEL}: {N_TRAIN} training rows, {N_VAL} validation, {EPOCHS} epochs, batch {BATCH},")
    print(f"adam {LR}, seed {SEED}, op determinism on; test accuracy on {N_TEST} test images")
    for name in names:
        env_add, precision, threads = CONFIGS[name]
        settings = [f"{k}={v}" for k, v in env_add.items()] + [precision]
        settings += [f"intra-op threads {threads}"] if threads else []
        print(f"  {name:14s} {', '.join(settings)}")
    if args.probe:
        print("\noneDNN probe (ONEDNN_VERBOSE=1, 256 rows, 1 epoch):", flush=True)
        for name in names:
            result, log = launch(name, args, probe=True)
            status = "" if result else " (probe run failed)"
            print(f"  {name}{status}\n    {kernels(log)}", flush=True)

    runs: dict[str, list[dict]] = {name: [] for name in names}
    failures: dict[str, str] = {}
    tmp = Path(tempfile.mkdtemp(prefix="determinism-"))
    print("\nround config          sha256[:12]   val_acc  test_acc  fit_s  epoch2_s", flush=True)
    start = time.perf_counter()
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:  # interleaved: ABC..CBA..
            if name in failures:
                continue
            result, log = launch(name, args, save=tmp / f"{name}-{r}.npz")
            if result is None:
                failures[name] = log.strip()[-1500:]
                print(f"{r + 1:5d} {name:15s} FAILED", flush=True)
                continue
            runs[name].append(result)
            print(
                f"{r + 1:5d} {name:15s} {result['sha256'][:12]}  {result['val_accuracy']:.4f}"
                f"    {result['test_accuracy']:.4f}  {result['seconds']:5.2f}"
                f"  {result['epoch_seconds'][-1]:8.2f}",
                flush=True,
            )
    print(f"({time.perf_counter() - start:.0f} s in all)")

    def median(name: str, key: str) -> float | None:
        if not runs.get(name):
            return None
        return statistics.median(
            r[key] if key == "seconds" else r["epoch_seconds"][-1] for r in runs[name]
        )

    reference = "default" if runs.get("default") else None
    print(
        "\nconfig          sha256[:12]   same_each_run  val_acc  test_acc  max|dw| vs default"
        "  fit/default  epoch2/default"
    )
    by_digest: dict[str, list[str]] = defaultdict(list)
    for name in names:
        if not runs[name]:
            continue
        first = runs[name][0]
        by_digest[first["sha256"]].append(name)
        same = "yes" if len({r["sha256"] for r in runs[name]}) == 1 else "NO"
        diff = float("nan")
        if reference:
            diff = max_difference(tmp / f"{name}-0.npz", tmp / f"{reference}-0.npz")
        ratios = [
            median(name, key) / median(reference, key) if reference else float("nan")
            for key in ("seconds", "epoch2")
        ]
        print(
            f"{name:15s} {first['sha256'][:12]}  {same:13s}  {first['val_accuracy']:.4f}"
            f"   {first['test_accuracy']:.4f}  {diff:18.2e}  {ratios[0]:11.2f}"
            f"  {ratios[1]:14.2f}"
        )
    if reference:
        noise = "; default_again's show the noise between runs" if runs.get("default_again") else ""
        print(f"(ratios of medians over {args.rounds} rounds{noise})")
    print("\nconfigurations sharing a weight digest:")
    for digest, group in by_digest.items():
        print(f"  {digest[:12]}: {', '.join(group)}")
    for name, log in failures.items():
        print(f"\n{name} failed:\n{log}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--mnist", type=Path, default=MNIST, help="raw MNIST, Keras layout")
    parser.add_argument("--no-probe", dest="probe", action="store_false")
    parser.add_argument("--trial", help=argparse.SUPPRESS)  # internal: one training
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--n-train", type=int, default=N_TRAIN, help=argparse.SUPPRESS)
    parser.add_argument("--n-val", type=int, default=N_VAL, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.trial:
        res = trial(a.trial, a.mnist, a.n_train, a.n_val, a.epochs, a.save)
        print("RESULT " + json.dumps(res), flush=True)
    else:
        main(a)
