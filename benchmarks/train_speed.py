"""Training throughput: the notebook's plain ``fit`` against the pipeline's training.

    python benchmarks/train_speed.py                      # cnn, 20 epochs, interleaved
    python benchmarks/train_speed.py --mode process --rounds 2 --variants pipeline,pipeline_nondet

Both sides train the same model from the same initial weights, on the same processed data
(``data/processed/mnist.npz``; run ``dvc repro preprocess`` first), with the same epochs,
batch size, optimiser and validation rows, and are tested on the same test set.

- ``notebook``: ``model.fit(x, y, batch_size=128, validation_split=0.1)`` on NumPy arrays, the
  notebook's call;
- ``pipeline``: what ``stages.train`` runs, with params.yaml's ``train`` section
  (``input_datasets``, ``steps_per_execution``, the resolved ``precision``, op determinism);
- ``pipeline_float32`` (interleave mode): the pipeline forced to float32, to separate what the
  input pipeline and what bfloat16 bring when ``train.precision`` resolves to mixed_bfloat16;
- ``pipeline_nondet`` (process mode only): the same without TF op determinism.

Modes. Shared VMs change speed by tens of percent within seconds, so runs that follow each
other compare badly.
- ``interleave`` (default): one process per side, each holding its model; they train epoch by
  epoch in turns (ABBA order), one at a time, and each epoch's wall time (training +
  validation) is taken by a callback, so both sides see the same machine at nearly the same
  moment. Each side imports TensorFlow with its own process-wide settings: the notebook's are
  TensorFlow's defaults for this CPU (no op determinism; oneDNN only on AVX-512 VNNI/BF16/AMX
  CPUs), the pipeline's are ``stages.train``'s (oneDNN on any CPU, op determinism).
- ``process``: each trial is a fresh process training all epochs in one ``fit`` call; the
  variants alternate round by round; medians over rounds.

Prints samples/s (training samples x epochs / seconds), the ratio to the notebook and test
accuracies.

    python benchmarks/train_speed.py --mode models --epochs 4    # cnn, cnn_small, cnn_small_bn

- ``models``: the pipeline's training of several models side by side in one process, one epoch
  each in turn (the order rotates every epoch), plus ``cnn_small_bn`` with Keras' own
  (unfused) BatchNormalization graph (``--keras-bn``); prints seconds per epoch and the ratios
  of median epochs that issue 14 sets goals for (first epoch, with graph tracing, left out).
"""

from __future__ import annotations

import argparse
import contextlib
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


def _setup(
    model_name: str, epochs: int, spe: int | None, deterministic: bool | None, seed: int | None
) -> tuple:
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    from intro_cnn import config
    from intro_cnn.data.dataset import load_processed

    params = config.load_params()
    cfg = replace(params.model(model_name), epochs=epochs)
    train_cfg = params.train
    if spe:
        train_cfg = replace(train_cfg, steps_per_execution=spe)
    if deterministic is not None:
        train_cfg = replace(train_cfg, deterministic=deterministic)
    seed = params.seed_for(model_name) if seed is None else seed
    return params, cfg, train_cfg, seed, load_processed()


def _notebook_arrays(data: dict) -> tuple:
    import numpy as np

    from intro_cnn.data.dataset import one_hot

    # The notebook's fit sees train + validation rows and splits off the last 10 % itself.
    x = np.concatenate([data["x_train"], data["x_val"]])
    y = one_hot(np.concatenate([data["y_train"], data["y_val"]]))
    return x, y


def _test_accuracy(model, data: dict) -> float:
    from intro_cnn.data.dataset import one_hot

    _, acc = model.evaluate(data["x_test"], one_hot(data["y_test"]), batch_size=1024, verbose=0)
    return float(acc)


SIDES = ("notebook", "pipeline", "pipeline_float32")


MESSAGE = "MSG "  # a worker's answers on stdout start with this; anything else is passed on


def side_worker(side: str, model_name: str, epochs: int, spe: int | None, seed: int | None) -> None:
    """One side of the interleaved run, in a process of its own (``--worker SIDE``).

    It builds and compiles its model, answers ``ready``, then trains one epoch for each
    ``epoch E`` line read from stdin and answers with its seconds and validation accuracy;
    ``test`` answers the test accuracy and ends. The notebook side imports TensorFlow plainly
    (its defaults for this CPU, no op determinism), as a notebook does; the pipeline sides go
    through ``configure_tensorflow``, as ``stages.train`` does.
    """
    params, cfg, train_cfg, seed, data = _setup(model_name, epochs, spe, None, seed)

    def say(**answer: object) -> None:
        print(MESSAGE + json.dumps(answer), flush=True)

    if side == "notebook":
        import keras

        from intro_cnn.models import build_model
        from intro_cnn.training.fitting import compile_model, epoch_timer

        keras.utils.set_random_seed(seed)
        model = build_model(model_name)
        compile_model(model, cfg, steps_per_execution=1)
        x, y = _notebook_arrays(data)
        fit_args = {
            "x": x,
            "y": y,
            "batch_size": cfg.batch_size,
            "validation_split": params.preprocess.validation_split,
        }
        fused = contextlib.nullcontext
    else:
        from intro_cnn.training.tf_settings import (
            configure_tensorflow,
            resolve_precision,
            use_prefetch,
        )

        configure_tensorflow(seed, train_cfg.deterministic)  # imports TensorFlow first
        from intro_cnn.models import build_model, fused_batch_norm
        from intro_cnn.training.fitting import compile_model, epoch_timer, input_datasets

        precision = "float32" if side == "pipeline_float32" else train_cfg.precision
        model = build_model(model_name, resolve_precision(precision))
        compile_model(model, cfg, train_cfg.steps_per_execution)
        train_ds, val_ds = input_datasets(
            data, cfg.batch_size, seed, use_prefetch(train_cfg.prefetch)
        )
        # the dataset reshuffles itself, as in fitting.fit
        fit_args = {"x": train_ds, "validation_data": val_ds, "shuffle": False}
        fused = lambda: fused_batch_norm(model)  # noqa: E731
    from intro_cnn.runtime import tf_import

    onednn = tf_import.onednn_enabled() if side != "notebook" else "TensorFlow's default"
    say(onednn=onednn, n_train=len(data["x_train"]))
    for line in sys.stdin:
        if line.startswith("epoch "):
            e = int(line.split()[1])
            timer = epoch_timer()
            with fused():
                hist = model.fit(
                    epochs=e + 1, initial_epoch=e, verbose=0, callbacks=[timer], **fit_args
                )
            say(seconds=timer.seconds[-1], val_accuracy=float(hist.history["val_accuracy"][-1]))
        elif line.strip() == "test":
            say(test_accuracy=_test_accuracy(model, data))
            return


def _ask(proc: subprocess.Popen, request: str | None) -> dict:
    """Send ``request`` to a side worker and read its answer (other output passes through)."""
    assert proc.stdin is not None and proc.stdout is not None
    if request is not None:
        proc.stdin.write(request + "\n")
        proc.stdin.flush()
    for line in proc.stdout:
        if line.startswith(MESSAGE):
            return json.loads(line[len(MESSAGE) :])
        sys.stdout.write(line)
    raise SystemExit(f"a side worker ended early (exit {proc.wait()}); its stderr is above")


def interleave(
    model_name: str, epochs: int, spe: int | None, sides: list[str], seed: int | None = None
) -> dict:
    """Train notebook-style and pipeline-style models in turns, one epoch at a time, each
    side in its own process (so each imports TensorFlow with its own settings)."""
    workers = {}
    for side in sides:
        cmd = [sys.executable, __file__, "--worker", side, "--model", model_name]
        cmd += ["--epochs", str(epochs)]
        cmd += ["--steps-per-execution", str(spe)] if spe else []
        cmd += ["--seed", str(seed)] if seed is not None else []
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        workers[side] = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
    for side, proc in workers.items():
        ready = _ask(proc, None)
        print(f"{side}: ready, oneDNN {ready['onednn']}", flush=True)
    seconds: dict[str, list[float]] = {side: [] for side in sides}
    val_acc: dict[str, float] = {}
    print("epoch " + " ".join(f"{side + ' s':>17}" for side in sides), flush=True)
    for e in range(epochs):
        for side in sides if e % 2 == 0 else sides[::-1]:  # ABBA: nobody always goes first
            answer = _ask(workers[side], f"epoch {e}")
            seconds[side].append(answer["seconds"])
            val_acc[side] = answer["val_accuracy"]
        print(f"{e + 1:5d} " + " ".join(f"{seconds[s][-1]:17.2f}" for s in sides), flush=True)
    test_acc = {side: _ask(proc, "test")["test_accuracy"] for side, proc in workers.items()}
    for proc in workers.values():
        proc.wait()
    return {
        side: {
            "samples_per_second": ready["n_train"] * epochs / sum(secs),
            "seconds": sum(secs),
            "median_epoch_seconds": statistics.median(secs),
            "val_accuracy": val_acc[side],
            "test_accuracy": test_acc[side],
        }
        for side, secs in seconds.items()
    }


KERAS_BN = "keras_bn"  # --mode models: the suffix of a side that trains Keras' own BN graph


def models_side_by_side(
    names: list[str], epochs: int, keras_bn: bool, precision: str | None = None
) -> dict:
    """Train each model as ``intro_cnn.training.fitting.fit`` does, one epoch each in turn;
    seconds per epoch from the second on."""
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    import keras

    from intro_cnn import config
    from intro_cnn.data.dataset import load_processed
    from intro_cnn.models import build_model, fused_batch_norm
    from intro_cnn.training.fitting import compile_model, epoch_timer, input_datasets
    from intro_cnn.training.tf_settings import (
        configure_tensorflow,
        resolve_precision,
        use_prefetch,
    )

    params = config.load_params()
    train_cfg = params.train
    configure_tensorflow(params.seed.seed, train_cfg.deterministic)
    precision = resolve_precision(precision or train_cfg.precision)
    print(f"precision {precision}; deterministic {train_cfg.deterministic}")
    data = load_processed()
    sides = names + ([f"cnn_small_bn/{KERAS_BN}"] if keras_bn else [])
    models, datasets = {}, {}
    for side in sides:
        name = side.split("/")[0]
        cfg = params.model(name)
        keras.utils.set_random_seed(params.seed_for(name))
        models[side] = build_model(name, precision)
        compile_model(models[side], cfg, train_cfg.steps_per_execution)
        prefetch = use_prefetch(train_cfg.prefetch)
        datasets[side] = input_datasets(data, cfg.batch_size, params.seed_for(name), prefetch)
    seconds: dict[str, list[float]] = {side: [] for side in sides}
    print("epoch " + " ".join(f"{side:>22}" for side in sides), flush=True)
    for e in range(epochs):
        shift = e % len(sides)
        for side in sides[shift:] + sides[:shift]:  # everyone goes first in turn
            timer = epoch_timer()
            keras_graph = side.endswith(KERAS_BN)
            with contextlib.nullcontext() if keras_graph else fused_batch_norm(models[side]):
                train_ds, val_ds = datasets[side]
                models[side].fit(
                    train_ds,
                    validation_data=val_ds,
                    epochs=e + 1,
                    initial_epoch=e,
                    shuffle=False,
                    verbose=0,
                    callbacks=[timer],
                )
            seconds[side].append(timer.seconds[-1])
        print(f"{e + 1:5d} " + " ".join(f"{seconds[s][-1]:22.2f}" for s in sides), flush=True)
    return {side: secs[1:] or secs for side, secs in seconds.items()}  # first epoch traces


def trial(
    variant: str, model_name: str, epochs: int, spe: int | None = None, seed: int | None = None
) -> dict:
    """Process mode: train once in this process, all epochs in one fit call."""
    det = False if variant == "pipeline_nondet" else None
    params, cfg, train_cfg, seed, data = _setup(model_name, epochs, spe, det, seed)
    import keras

    from intro_cnn.models import build_model
    from intro_cnn.training.fitting import compile_model, fit
    from intro_cnn.training.tf_settings import configure_tensorflow, resolve_precision

    # Seed before building: Keras draws the initial weights when the model is built.
    if variant == "notebook":
        keras.utils.set_random_seed(seed)
        model = build_model(model_name)
    else:
        configure_tensorflow(seed, train_cfg.deterministic)
        model = build_model(model_name, resolve_precision(train_cfg.precision))
    if variant == "notebook":
        x, y = _notebook_arrays(data)
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
        result = fit(model, data, cfg, train_cfg, seed, verbose=2)
        wall, samples_per_second = result.wall_seconds, result.samples_per_second
    return {
        "variant": variant,
        "samples_per_second": samples_per_second,
        "wall_seconds": wall,
        "test_accuracy": _test_accuracy(model, data),
    }


def run_processes(args: argparse.Namespace) -> None:
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        sys.exit(f"unknown variant(s) {unknown}; valid: {', '.join(VARIANTS)}")
    results: dict[str, list[dict]] = {v: [] for v in variants}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for r in range(args.rounds):
        order = variants if r % 2 == 0 else variants[::-1]  # alternate who goes first
        for v in order:
            cmd = [sys.executable, __file__, "--trial", v, "--model", args.model]
            cmd += ["--epochs", str(args.epochs)]
            if args.steps_per_execution:
                cmd += ["--steps-per-execution", str(args.steps_per_execution)]
            if args.seed is not None:
                cmd += ["--seed", str(args.seed)]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--mode", choices=("interleave", "process", "models"), default="interleave")
    parser.add_argument(
        "--models",
        default="cnn,cnn_small,cnn_small_bn",
        help="models mode: the models trained side by side",
    )
    parser.add_argument(
        "--keras-bn",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="models mode: also cnn_small_bn with Keras' own BatchNormalization graph",
    )
    parser.add_argument("--precision", help="models mode: override train.precision")
    parser.add_argument("--rounds", type=int, default=2, help="process mode: trials per variant")
    parser.add_argument(
        "--variants", default="notebook,pipeline", help="process mode: " + ",".join(VARIANTS)
    )
    parser.add_argument(
        "--steps-per-execution", type=int, help="override train.steps_per_execution (pipeline)"
    )
    parser.add_argument(
        "--sides", default="notebook,pipeline", help="interleave mode: " + ",".join(SIDES)
    )
    parser.add_argument("--seed", type=int, help="override the model's seed from params.yaml")
    parser.add_argument("--trial", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        side_worker(args.worker, args.model, args.epochs, args.steps_per_execution, args.seed)
        return

    if args.trial:
        res = trial(args.trial, args.model, args.epochs, args.steps_per_execution, args.seed)
        print("RESULT " + json.dumps(res), flush=True)
        return
    if args.mode == "models":
        print(f"models side by side, {args.epochs} epochs, one process")
        names = args.models.split(",")
        secs = models_side_by_side(names, args.epochs, args.keras_bn, args.precision)
        med = {side: statistics.median(s) for side, s in secs.items()}
        print("median epoch (epochs 2 on): " + ", ".join(f"{s} {v:.2f} s" for s, v in med.items()))
        for a, b in (
            ("cnn_small", "cnn"),
            ("cnn_small_bn", "cnn_small"),
            (f"cnn_small_bn/{KERAS_BN}", "cnn_small"),
        ):
            if a in med and b in med:
                # Epochs of one round ran seconds apart: their ratio shrugs off slow spells.
                paired = statistics.median(x / y for x, y in zip(secs[a], secs[b], strict=True))
                ratio = med[a] / med[b]
                print(f"{a} / {b}: {ratio:.2f}x (median of per-epoch ratios {paired:.2f}x)")
        return
    if args.mode == "process":
        print(f"model {args.model}, {args.epochs} epochs, {args.rounds} rounds, process mode")
        run_processes(args)
        return

    sides = args.sides.split(",")
    if sides[0] != "notebook" or not set(sides) <= set(SIDES):
        sys.exit(f"--sides: notebook first, then any of {', '.join(SIDES[1:])}")
    print(f"model {args.model}, {args.epochs} epochs, interleaved, one process per side")
    res = interleave(args.model, args.epochs, args.steps_per_execution, sides, args.seed)
    nb = res["notebook"]
    for side, r in res.items():
        print(
            f"  {side:16s} {r['samples_per_second']:6.0f} samples/s  {r['seconds']:6.1f} s  "
            f"median epoch {r['median_epoch_seconds']:5.2f} s  "
            f"val acc {r['val_accuracy']:.4f}  test acc {r['test_accuracy']:.4f}"
        )
    for side, r in res.items():
        if side == "notebook":
            continue
        epoch_ratio = nb["median_epoch_seconds"] / r["median_epoch_seconds"]
        print(
            f"{side}/notebook: {r['samples_per_second'] / nb['samples_per_second']:.2f}x "
            f"samples/s (median epoch {epoch_ratio:.2f}x)"
            f"; test accuracy {100 * (r['test_accuracy'] - nb['test_accuracy']):+.2f} points"
        )
    print("RESULT " + json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
