"""Training throughput: the notebook's plain ``fit`` against the pipeline's ``stages.train.fit``.

    python benchmarks/train_speed.py --model cnn --epochs 20 --rounds 2

Both sides train the same model, on the same processed data (``data/processed/mnist.npz``; run
``dvc repro preprocess`` first), with the same epochs, batch size, optimiser, seed and
validation rows. Each trial is a fresh process (same start-up cost, no state shared), and the
variants alternate round by round so that machine noise hits all of them alike. It prints each
trial's samples/s (training samples x epochs / fit wall seconds, validation included) and test
accuracy, then the medians and the ratio to the notebook.

Variants:
- ``notebook``: ``model.fit(x, y, batch_size=128, validation_split=0.1)`` on NumPy arrays, the
  notebook's call (verbose=2 so both sides print the same one line per epoch);
- ``pipeline``: ``stages.train.fit`` with params.yaml's ``train`` section as committed;
- ``pipeline_nondet``: the same without TF op determinism, to show what determinism costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("notebook", "pipeline", "pipeline_nondet")


def trial(variant: str, model_name: str, epochs: int, spe: int | None = None) -> dict:
    """Train once in this process and return samples/s and test accuracy."""
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    import keras
    import numpy as np

    from stages import config
    from stages.models import build_model
    from stages.preprocess import load_processed, one_hot
    from stages.train import compile_model, configure_tensorflow, fit

    params = config.load_params()
    cfg = replace(params.model(model_name), epochs=epochs)
    seed = params.seed_for(model_name)
    data = load_processed()
    # Seed before building: Keras draws the initial weights when the model is built.
    if variant == "notebook":
        keras.utils.set_random_seed(seed)
    else:
        train_cfg = params.train
        if spe:
            train_cfg = replace(train_cfg, steps_per_execution=spe)
        if variant == "pipeline_nondet":
            train_cfg = replace(train_cfg, deterministic=False)
        configure_tensorflow(seed, train_cfg.deterministic)
    model = build_model(model_name)
    if variant == "notebook":
        x = np.concatenate([data["x_train"], data["x_val"]])
        y = one_hot(np.concatenate([data["y_train"], data["y_val"]]))
        compile_model(model, cfg, steps_per_execution=1)
        start = time.perf_counter()
        model.fit(
            x,
            y,
            batch_size=cfg.batch_size,
            epochs=cfg.epochs,
            validation_split=params.preprocess.validation_split,
            verbose=2,
        )
        wall = time.perf_counter() - start
        samples_per_second = len(data["x_train"]) * cfg.epochs / wall
    else:
        result = fit(model, data, cfg, train_cfg, verbose=2)
        wall, samples_per_second = result.wall_seconds, result.samples_per_second
    _, test_acc = model.evaluate(data["x_test"], one_hot(data["y_test"]), verbose=0)
    return {
        "variant": variant,
        "samples_per_second": samples_per_second,
        "wall_seconds": wall,
        "test_accuracy": float(test_acc),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default="notebook,pipeline,pipeline_nondet")
    parser.add_argument(
        "--steps-per-execution", type=int, help="override train.steps_per_execution (pipeline)"
    )
    parser.add_argument("--trial", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.trial:
        res = trial(args.trial, args.model, args.epochs, args.steps_per_execution)
        print("RESULT " + json.dumps(res), flush=True)
        return

    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        sys.exit(f"unknown variant(s) {unknown}; valid: {', '.join(VARIANTS)}")
    results: dict[str, list[dict]] = {v: [] for v in variants}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    print(f"model {args.model}, {args.epochs} epochs, {args.rounds} rounds, variants {variants}")
    for r in range(args.rounds):
        order = variants if r % 2 == 0 else variants[::-1]  # alternate who goes first
        for v in order:
            cmd = [sys.executable, __file__, "--trial", v, "--model", args.model]
            cmd += ["--epochs", str(args.epochs)]
            if args.steps_per_execution:
                cmd += ["--steps-per-execution", str(args.steps_per_execution)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
            if out.returncode != 0 or not lines:
                sys.exit(f"trial {v} failed:\n{out.stderr[-3000:]}")
            res = json.loads(lines[-1][len("RESULT ") :])
            results[v].append(res)
            print(
                f"round {r + 1} {v:16s} {res['samples_per_second']:8.0f} samples/s "
                f"{res['wall_seconds']:7.1f} s  test accuracy {res['test_accuracy']:.4f}",
                flush=True,
            )
    print("\nmedian over rounds:")
    base = None
    if "notebook" in results:
        base = statistics.median(x["samples_per_second"] for x in results["notebook"])
    for v in variants:
        sps = statistics.median(x["samples_per_second"] for x in results[v])
        acc = statistics.mean(x["test_accuracy"] for x in results[v])
        ratio = f"{sps / base:5.2f}x notebook" if base else ""
        print(f"  {v:16s} {sps:8.0f} samples/s  test accuracy {acc:.4f}  {ratio}")


if __name__ == "__main__":
    main()
