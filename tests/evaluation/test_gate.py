"""Tests of the metric gate (intro_cnn/evaluation/gate_checks.py, the command
intro_cnn/commands/gate.py): checks, messages and exit codes."""

from __future__ import annotations

import logging
import math
import subprocess
from pathlib import Path

import pytest
import yaml

from intro_cnn import config
from intro_cnn.commands import gate
from intro_cnn.config import ROOT, ConfigError, parse_params
from intro_cnn.evaluation import gate_checks
from intro_cnn.runtime import errors
from intro_cnn.runtime.files import write_json

METRICS = {
    "cnn": {"test": {"accuracy": 0.9871, "loss": 0.04}, "inference_images_per_s": 9000.0},
    "mlp": {"test": {"accuracy": 0.9802, "loss": 0.07}, "inference_images_per_s": 20000.0},
}


PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def parse(section):
    """The typed thresholds for a raw ``thresholds`` section of params.yaml."""
    return parse_params(PARAMS | {"thresholds": section}).thresholds


def thresholds(minimums=None, better_than=()):
    return parse({"min": minimums or {}, "better_than": list(better_than)})


def failures(metrics, th) -> list[str]:
    return [r.line() for r in gate_checks.check(metrics, th) if not r.ok]


def test_passes_when_every_metric_meets_its_minimum():
    th = thresholds(
        {"cnn": {"test.accuracy": 0.985}, "mlp": {"test.accuracy": 0.98}},
        [{"model": "cnn", "than": "mlp", "metric": "test.accuracy"}],
    )
    results = gate_checks.check(METRICS, th)
    assert [r.ok for r in results] == [True, True, True]
    assert [r.line() for r in results] == [
        "cnn.test.accuracy 0.9871 >= 0.9850",
        "mlp.test.accuracy 0.9802 >= 0.9800",
        "cnn.test.accuracy 0.9871 > mlp.test.accuracy 0.9802",
    ]
    text = gate_checks.table(results).splitlines()
    assert text[0].split() == ["model", "metric", "value", "threshold", "ok"]
    assert text[1].split() == ["cnn", "test.accuracy", "0.9871", ">=", "0.9850", "ok"]
    assert text[3].split() == ["cnn", "test.accuracy", "0.9871", ">", "mlp", "(0.9802)", "ok"]


def test_a_value_equal_to_the_minimum_passes():
    assert failures(METRICS, thresholds({"cnn": {"test.accuracy": 0.9871}})) == []


def test_fails_on_one_metric_with_the_exact_line():
    th = thresholds({"cnn": {"test.accuracy": 0.99}, "mlp": {"test.accuracy": 0.98}})
    assert failures(METRICS, th) == ["cnn.test.accuracy 0.9871 < 0.9900"]


def test_missing_metric_fails():
    th = thresholds({"cnn": {"test.macro_f1": 0.9, "test.accuracy": 0.9}})
    (line,) = failures(METRICS, th)
    assert line.startswith("cnn.test.macro_f1 missing")


def test_missing_model_fails():
    th = thresholds({"cnn_small": {"test.accuracy": 0.9}})
    (line,) = failures(METRICS, th)
    assert line.startswith("cnn_small.test.accuracy missing")
    assert "evaluated: cnn, mlp" in line


def test_nan_or_non_number_fails():
    metrics = {"cnn": {"test": {"accuracy": math.nan, "loss": "low"}}}
    th = thresholds({"cnn": {"test.accuracy": 0.5, "test.loss": 0.0, "test": 0.0}})
    lines = failures(metrics, th)
    assert [line.split(" ")[0] for line in lines] == [
        "cnn.test.accuracy",
        "cnn.test.loss",
        "cnn.test",
    ]
    assert all(" missing (" in line for line in lines)


def test_ordering_rule():
    rule = [{"model": "mlp", "than": "cnn", "metric": "test.accuracy"}]
    assert failures(METRICS, thresholds(better_than=rule)) == [
        "mlp.test.accuracy 0.9802 <= cnn.test.accuracy 0.9871"
    ]
    tie = {"cnn": METRICS["cnn"], "mlp": METRICS["cnn"]}
    assert len(failures(tie, thresholds(better_than=rule))) == 1  # "better" is strict
    rule = [{"model": "cnn", "than": "cnn_small", "metric": "test.accuracy"}]
    (line,) = failures(METRICS, thresholds(better_than=rule))
    assert line.startswith("cnn_small.test.accuracy missing")


def test_nothing_gated_is_an_error():
    with pytest.raises(gate_checks.GateConfigError, match="Nothing is gated"):
        gate_checks.check(METRICS, parse({}))
    with pytest.raises(gate_checks.GateConfigError, match="Nothing is gated"):
        gate_checks.check(METRICS, thresholds({"cnn": {}}))


def test_parse_rejects_malformed_thresholds():
    with pytest.raises(ConfigError, match=r"thresholds.cnn: unknown key"):
        parse({"cnn": {"test.accuracy": 0.9}})  # the old flat shape
    with pytest.raises(ConfigError, match=r"accuracy = 'high': input should be a valid number"):
        parse({"min": {"cnn": {"test.accuracy": "high"}}})
    with pytest.raises(ConfigError, match=r"better_than\[0\] = .*expected a mapping"):
        parse({"better_than": [["cnn", "mlp", "test.accuracy"]]})


def test_params_yaml_thresholds_parse():
    parse(PARAMS.get("thresholds"))


# --------------------------------------------------------------------------------------
# main(): exit codes and output
# --------------------------------------------------------------------------------------
def run_main(tmp_path, metrics, section) -> None:
    m, p = tmp_path / "metrics.json", tmp_path / "params.yaml"
    if metrics is not None:
        write_json(m, metrics)
    p.write_text(yaml.safe_dump(PARAMS | {"thresholds": section}))
    # The proof that the metrics belong to the models (staleness, re-measuring) and the
    # champion it allows are tested on real models in tests/reliability/test_gate_evidence.py.
    gate.main(["--metrics", str(m), "--params", str(p), "--unverified"])


@pytest.fixture
def registry(tmp_path, monkeypatch, new_store):
    """A real MLflow store in tmp_path where cnn and mlp have logged models, and run.json
    files (as the train stage writes them) naming them."""
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri = new_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("intro-cnn")
    for model in ("cnn", "mlp"):
        logged = client.create_logged_model(experiment, name=model)
        write_json(Path("reports/train") / model / "run.json", {"model_id": logged.model_id})
    return client


def champion(client, model: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(f"intro-cnn-{model}", "champion").version)
    except MlflowException:
        return None


def test_main_exit_codes(registry, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="intro_cnn.commands.gate")
    ok = {"min": {"cnn": {"test.accuracy": 0.98}}}
    run_main(tmp_path, METRICS, ok)  # returns: exit status 0
    assert "all 1 checks passed on unverified metrics; no alias moved" in caplog.text
    assert "cnn    test.accuracy  0.9871  >= 0.9800  ok" in caplog.text
    # Unverified numbers crown nothing.
    assert (champion(registry, "cnn"), champion(registry, "mlp")) == (None, None)

    caplog.clear()
    bad = {
        "min": {"cnn": {"test.accuracy": 0.99}, "mlp": {"test.accuracy": 0.95}},
        "better_than": [{"model": "mlp", "than": "cnn", "metric": "test.accuracy"}],
    }
    with pytest.raises(SystemExit) as exc:
        run_main(tmp_path, METRICS, bad)
    assert exc.value.code == errors.EXIT_FAILED == 1
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert logged[:2] == [
        "cnn.test.accuracy 0.9871 < 0.9900",
        "mlp.test.accuracy 0.9802 <= cnn.test.accuracy 0.9871",
    ]
    assert "2 of 3 checks failed" in logged[2]

    for metrics, section, message in [
        (METRICS, {}, "Nothing is gated"),
        (None, ok, "metrics.json not found"),
        (METRICS, {"cnn": {"test.accuracy": 0.9}}, "unknown key"),
    ]:
        caplog.clear()
        (tmp_path / "metrics.json").unlink(missing_ok=True)
        with pytest.raises(SystemExit) as exc:
            run_main(tmp_path, metrics, section)
        assert exc.value.code == errors.EXIT_CONFIG == 2
        assert message in caplog.text


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("prefetch", "sometimes", "train.prefetch = 'sometimes': input should be 'auto'"),
        ("precision", "float16", "train.precision = 'float16': input should be 'auto'"),
        ("steps_per_execution", 0, "train.steps_per_execution = 0: input should be greater"),
    ],
)
def test_bad_train_settings_are_named(key, value, message):
    raw = PARAMS | {"train": {**PARAMS["train"], key: value}}
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)


# --------------------------------------------------------------------------------------
# Regression rule: max_drop against the committed baseline
# --------------------------------------------------------------------------------------
BASELINE = {
    "cnn": {"test": {"accuracy": 0.9898, "loss": 0.037}},
    "mlp": {"test": {"accuracy": 0.9807, "loss": 0.069}},
}


def test_regression_rule_names_model_metric_baseline_and_new_value():
    th = parse({"max_drop": {"cnn": {"test.accuracy": 0.003}, "mlp": {"test.accuracy": 0.003}}})
    results = gate_checks.check(METRICS, th, BASELINE, "HEAD")
    # cnn fell 0.0027 (within 0.003), mlp 0.0005 below its baseline.
    assert [r.ok for r in results] == [True, True]
    worse = {"cnn": {"test": {"accuracy": 0.9848}}, "mlp": METRICS["mlp"]}
    (line,) = [r.line() for r in gate_checks.check(worse, th, BASELINE, "main") if not r.ok]
    assert (
        line == "cnn.test.accuracy 0.9848, baseline 0.9898 at main: drop 0.0050 > max_drop 0.0030"
    )


def test_regression_rule_edges():
    th = parse({"max_drop": {"cnn": {"test.accuracy": 0.005}, "cnn_small": {"test.accuracy": 0}}})
    exact = {"cnn": {"test": {"accuracy": 0.9848}}, "cnn_small": {"test": {"accuracy": 0.98}}}
    results = gate_checks.check(
        exact, th, BASELINE | {"cnn": {"test": {"accuracy": 0.9898}}}, "HEAD"
    )
    assert results[0].ok  # a drop equal to max_drop passes, float rounding notwithstanding
    assert results[1].ok and "no baseline at HEAD (new)" in results[1].line()  # a new model
    gone = gate_checks.check({"cnn": METRICS["cnn"]}, th, BASELINE, "HEAD")
    assert not gone[1].ok and gone[1].line().startswith("cnn_small.test.accuracy missing")
    better = {"cnn": {"test": {"accuracy": 0.999}}, "cnn_small": {"test": {"accuracy": 0.9}}}
    assert gate_checks.check(better, th, {}, "HEAD")[0].ok
    with pytest.raises(gate_checks.GateConfigError, match="no baseline metrics"):
        gate_checks.check(METRICS, th)


def with_seeds(accuracies: dict[int, float]) -> dict:
    """A model's metrics.json entry with every seed's test accuracy, designated seed first."""
    first = next(iter(accuracies.values()))
    per_seed = {str(k): v for k, v in accuracies.items()}
    return {"test": {"accuracy": first}, "seeds": {"test_accuracy": {"per_seed": per_seed}}}


BASE_SEEDS = {1: 0.986, 2: 0.987, 3: 0.985, 4: 0.9865, 5: 0.9855}  # mean 0.986, sd 0.000791


def test_regression_across_seeds_is_welchs_test_at_the_false_alarm_rate():
    th = parse({"max_drop": {"cnn_small": {"test.accuracy": 0.003}}, "false_alarm": 0.01})
    base = {"cnn_small": with_seeds(BASE_SEEDS)}
    # Another machine: every seed moved, the mean by -0.0003, well inside the seed spread.
    moved = {"cnn_small": with_seeds({1: 0.9852, 2: 0.9872, 3: 0.9858, 4: 0.9861, 5: 0.9843})}
    (ok,) = gate_checks.check(moved, th, base, "HEAD")
    assert ok.ok and ok.welch is not None and ok.n == (5, 5)
    # Half a point lost on every seed fails, naming the rule, the effect and its bound.
    lost = {"cnn_small": with_seeds({k: v - 0.005 for k, v in BASE_SEEDS.items()})}
    (bad,) = gate_checks.check(lost, th, base, "main")
    assert not bad.ok
    # se = sqrt(2 * 0.000791^2 / 5) = 0.0005, df = 8, t(0.99, 8) = 2.896459
    assert bad.welch.bound == pytest.approx(0.005 - 2.896459 * 0.0005, abs=2e-6)
    assert bad.line() == (
        "cnn_small.test.accuracy mean 0.9810 of 5 seeds, baseline mean 0.9860 of 5 at main: "
        "drop +0.0050, 99% lower bound +0.0036 > 0 (Welch's one-sided test, false-alarm rate 0.01)"
    )
    assert "beyond seed noise" in gate_checks.table([ok, bad])
    # One seed on either side: the max_drop rule on the designated value.
    single = {"cnn_small": {"test": {"accuracy": 0.9820}}}
    (rule,) = gate_checks.check(single, th, base, "HEAD")
    assert rule.welch is None and not rule.ok and "max_drop 0.0030" in rule.line()


def test_ordering_across_seeds_needs_the_interval_above_zero():
    rule = [{"model": "cnn", "than": "mlp", "metric": "test.accuracy"}]
    mlp = with_seeds({1: 0.981, 2: 0.982, 3: 0.983})
    (far,) = gate_checks.check({"cnn": with_seeds({1: 0.991}), "mlp": mlp}, thresholds([], rule))
    assert far.ok and far.diff.rule == "one against sample"
    (close,) = gate_checks.check({"cnn": with_seeds({1: 0.984}), "mlp": mlp}, thresholds([], rule))
    assert not close.ok  # higher, but not beyond the mlp's seed spread
    assert close.line().startswith("cnn.test.accuracy minus mlp: +0.0020, 95 % interval [-0.00")
    assert close.line().endswith("(one against sample, seeds 1, 2, 3): not above 0")


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_main_compares_with_the_committed_baseline(registry, tmp_path, caplog):
    """The gate reads the baseline from git (HEAD by default) and exits 1 on a regression."""
    caplog.set_level(logging.INFO, logger="intro_cnn.commands.gate")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.com")
    _git(tmp_path, "config", "user.name", "t")
    write_json(tmp_path / config.COMPARE_METRICS, BASELINE)
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "baseline")
    section = {
        "min": {"cnn": {"test.accuracy": 0.98}},
        "max_drop": {"cnn": {"test.accuracy": 0.003}},
    }
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS | {"thresholds": section}))
    # The proof that the metrics belong to the models is tested in tests/reliability.
    args = ["--metrics", str(config.COMPARE_METRICS), "--params", str(params), "--unverified"]

    gate.main(args)  # the rerun reproduced the baseline: passes
    assert "all 2 checks passed" in caplog.text

    write_json(tmp_path / config.COMPARE_METRICS, {"cnn": {"test": {"accuracy": 0.9860}}})
    caplog.clear()
    with pytest.raises(SystemExit) as exc:
        gate.main(args)
    assert exc.value.code == errors.EXIT_FAILED
    assert "cnn.test.accuracy 0.9860, baseline 0.9898 at HEAD: drop 0.0038 > max_drop 0.0030" in (
        caplog.text
    )

    caplog.clear()
    with pytest.raises(SystemExit) as exc:
        gate.main([*args, "--baseline", "no-such-rev"])
    assert exc.value.code == errors.EXIT_CONFIG
    assert f"No baseline no-such-rev:{config.COMPARE_METRICS.as_posix()}" in caplog.text
