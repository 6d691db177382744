"""Bad params.yaml: every stage answers in about a second, exit 2, naming the file and key.

The in-process battery covers wrong-but-plausible values for every section; the subprocess
cases check what a user sees from each stage: exit status 2, one message naming the file, key
path and bad value, no traceback, nothing heavy (TensorFlow, MLflow, matplotlib) imported and
nothing written.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from intro_cnn.config import ConfigError, load_params, parse_params

from .conftest import ROOT, listing, report, spawn

BASE = yaml.safe_load((ROOT / "params.yaml").read_text())


def changed(path: str, value: object = None, delete: bool = False) -> dict:
    """params.yaml with the dotted ``path`` set to ``value`` (or deleted)."""
    raw = copy.deepcopy(BASE)
    node = raw
    *parents, last = path.split("/")
    for key in parents:
        node = node[key]
    if delete:
        del node[last]
    else:
        node[last] = value
    return raw


# (key path with "/" between levels, bad value, text the message must contain)
BATTERY = [
    # data
    ("data/sources", ["local", "kaggle"], "data.sources[1] = 'kaggle'"),
    ("data/sources", [], "data.sources = []"),
    ("data/sources", ["keras", "keras"], "lists ['keras'] more than once"),
    ("data/sources", "keras", "data.sources = 'keras'"),
    ("data/keras_sha256", "731c5ac6", "expected 64 lowercase hexadecimal digits"),
    ("data/content_sha256/x_train", "A" * 64, "data.content_sha256.x_train"),
    ("data/idx_md5/train-images-idx3-ubyte.gz", 12345, "input should be a valid string"),
    ("data/timeout_s", 0, "data.timeout_s = 0"),
    ("data/timeout_s", float("inf"), "finite number"),
    ("data/retries", -1, "data.retries = -1"),
    ("data/retries", 2.5, "data.retries = 2.5"),
    ("data/image_max_pixels", 0, "data.image_max_pixels = 0"),
    ("data/locale", "x", "data.locale: unknown key"),
    # preprocess
    ("preprocess/validation_split", 1.5, "preprocess.validation_split = 1.5"),
    ("preprocess/validation_split", 0, "preprocess.validation_split = 0"),
    ("preprocess/validation_split", 10, "input should be less than 1"),
    ("preprocess/validation_split", "10%", "input should be a valid number"),
    # seed
    ("seed/seed", -1, "seed.seed = -1"),
    ("seed/seed", 2**32, "seed.seed = 4294967296"),
    ("seed/seed", "one", "seed.seed = 'one'"),
    ("seed/seeds", 1, "seed.seeds: unknown key"),
    # train
    ("train/steps_per_execution", 0, "train.steps_per_execution = 0"),
    ("train/deterministic", "yes please", "train.deterministic = 'yes please'"),
    ("train/prefetch", "sometimes", "train.prefetch = 'sometimes'"),
    ("train/precision", "float16", "train.precision = 'float16'"),
    ("train/experiment", "  ", "train.experiment = '  ': must not be empty"),
    # models
    ("models/cnn/learning_rate", -0.001, "models.cnn.learning_rate = -0.001"),
    ("models/cnn/learning_rate", 0, "models.cnn.learning_rate = 0"),
    ("models/cnn/learning_rate", 10, "models.cnn.learning_rate = 10"),
    ("models/cnn/learning_rate", float("nan"), "models.cnn.learning_rate = nan"),
    ("models/cnn/epochs", 0, "models.cnn.epochs = 0"),
    ("models/cnn/epochs", -5, "models.cnn.epochs = -5"),
    ("models/cnn/epochs", 2.5, "models.cnn.epochs = 2.5"),
    ("models/cnn/epochs", True, "models.cnn.epochs = True"),
    ("models/cnn/epochs", "20", "models.cnn.epochs = '20'"),
    ("models/cnn/batch_size", 0, "models.cnn.batch_size = 0"),
    ("models/cnn/batch_size", 10**7, "models.cnn.batch_size = 10000000"),
    ("models/cnn/optimizer", "sgd", "models.cnn.optimizer = 'sgd'"),
    ("models/cnn/loss", "sparse_categorical_crossentropy", "models.cnn.loss"),
    ("models/cnn/epoch", 20, "models.cnn.epoch: unknown key"),
    ("models/cnn/seed", -3, "models.cnn.seed = -3"),
    ("models/resnet", BASE["models"]["cnn"], "models.resnet: no model builder named 'resnet'"),
    ("models", {}, "models = {}"),
    ("models/cnn", None, "models.cnn = None"),
    # evaluate
    ("evaluate/batch_size", 0, "evaluate.batch_size = 0"),
    ("evaluate/n_wrong", -1, "evaluate.n_wrong = -1"),
    # convolutions
    ("convolutions/walk_steps", 0, "convolutions.walk_steps = 0"),
    ("convolutions/gauss_taps", 100001, "convolutions.gauss_taps = 100001"),
    (
        "convolutions/gauss_taps",
        16,
        "convolutions.gauss_taps = 16: must be odd so the Gaussian is centred on a tap; "
        "use 15 or 17",
    ),
    ("convolutions/gauss_taps", 100, "convolutions.gauss_taps = 100: must be odd"),
    ("convolutions/gauss_taps", 2, "centred on a tap; use 1 or 3"),
    ("convolutions/gauss_halfwidth", 0.0, "convolutions.gauss_halfwidth = 0.0"),
    ("convolutions/walk_seed", -2, "convolutions.walk_seed = -2"),
    # report
    ("report/lang", "fr", "report.lang = 'fr'"),
    ("report/lang", False, "report.lang = False"),  # `lang: no` in YAML 1.1
    ("report/dpi", 100000, "report.dpi = 100000"),
    ("report/n_feature_images", 0, "report.n_feature_images = 0"),
    # thresholds
    ("thresholds/min/cnn/test.accuracy", 98.5, "thresholds.min.cnn.test.accuracy = 98.5"),
    ("thresholds/min/cnn/test.accuracy", -0.1, "thresholds.min.cnn.test.accuracy = -0.1"),
    ("thresholds/cnn", {"test.accuracy": 0.9}, "thresholds.cnn: unknown key"),
    ("thresholds/better_than", [["cnn", "mlp"]], "thresholds.better_than[0] = ['cnn', 'mlp']"),
    (
        "thresholds/better_than",
        [{"model": "cnn", "than": "cnn", "metric": "test.accuracy"}],
        "a model cannot beat itself",
    ),
    # replicates
    ("replicates/seeds", [2, 3, 2], "replicates.seeds = [2, 3, 2]: a seed appears twice"),
    ("replicates/seeds", [-1], "replicates.seeds[0] = -1"),
    ("replicates/models", ["resnet"], "replicates.models: 'resnet' is not in `models`"),
    ("replicates/seeds", [1, 2], "replicates.seeds: 1 is already cnn_small's designated seed"),
    ("replicates/models", "cnn_small", "replicates.models = 'cnn_small'"),
    ("thresholds/false_alarm", 0.5, "thresholds.false_alarm = 0.5"),
    # whole sections
    ("evaluate", None, "evaluate = None"),
    ("report", None, "report", True),
    ("trian", {}, "trian: unknown key"),
]


@pytest.mark.parametrize("case", BATTERY, ids=[c[0] + "=" + repr(c[1])[:20] for c in BATTERY])
def test_battery_names_key_value_and_what_is_allowed(case):
    path, value, expected, *delete = (*case,)
    with pytest.raises(ConfigError) as info:
        parse_params(changed(path, value, delete=bool(delete)))
    message = str(info.value)
    assert message.startswith("params.yaml")
    assert expected in message, message
    assert "Traceback" not in message


def test_a_missing_section_is_named():
    with pytest.raises(ConfigError, match=r"params.yaml: report: missing"):
        parse_params(changed("report", delete=True))


def test_every_error_is_listed_at_once():
    raw = changed("models/cnn/epochs", 0)
    raw["seed"]["seed"] = -1
    with pytest.raises(ConfigError, match=r"has 2 errors:\n  - seed.seed = -1.*\n  - models.cnn"):
        parse_params(raw)


def test_the_committed_params_are_valid_and_yaml_1_2_floats_are_numbers(tmp_path):
    params = load_params(ROOT / "params.yaml")
    assert params.model("cnn").learning_rate == 0.001
    text = (ROOT / "params.yaml").read_text().replace("learning_rate: 0.001", "learning_rate: 1e-3")
    (tmp_path / "params.yaml").write_text(text)
    assert load_params(tmp_path / "params.yaml").model("cnn").learning_rate == 0.001


# --------------------------------------------------------------------------------------
# What a user sees from each stage (subprocesses).
# --------------------------------------------------------------------------------------
STAGES = {
    "download": ["stages.download"],
    "preprocess": ["stages.preprocess"],
    "train": ["stages.train", "cnn"],
    "evaluate": ["stages.evaluate", "cnn"],
    "replicate": ["stages.replicate", "cnn_small", "2"],
    "compare": ["stages.compare"],
    "convolutions": ["stages.convolutions"],
    "visualize": ["stages.visualize"],
    "report": ["stages.report"],
    "gate": ["intro_cnn.commands.gate"],
}
# One bad value per section, run through the stage that reads that section.
PER_SECTION = [
    ("data", "download", "data/timeout_s", -15, "data.timeout_s = -15"),
    ("preprocess", "preprocess", "preprocess/validation_split", 1.5, "validation_split = 1.5"),
    ("seed", "train", "seed/seed", -1, "seed.seed = -1"),
    ("train", "train", "train/steps_per_execution", 0, "steps_per_execution = 0"),
    ("models", "train", "models/cnn/learning_rate", -0.001, "models.cnn.learning_rate"),
    ("models-name", "train", "models/cnnn", BASE["models"]["cnn"], "models.cnnn: no model"),
    ("evaluate", "evaluate", "evaluate/batch_size", 0, "evaluate.batch_size = 0"),
    ("convolutions", "convolutions", "convolutions/gauss_halfwidth", -2.0, "gauss_halfwidth"),
    ("convolutions-even", "convolutions", "convolutions/gauss_taps", 16, "use 15 or 17"),
    ("report", "visualize", "report/lang", "fr", "report.lang = 'fr'"),
    ("report-dpi", "report", "report/dpi", 0, "report.dpi = 0"),
    ("thresholds", "gate", "thresholds/min/cnn/test.accuracy", 98.5, "test.accuracy = 98.5"),
    ("replicates", "replicate", "replicates/seeds", [3, 3], "a seed appears twice"),
]


def _check_config_failure(case: str, outcome, expected: str, before: list[str], after: list[str]):
    report(case, outcome, "unchanged" if after == before else f"CHANGED: {after}")
    assert outcome.code == 2, outcome.stderr[-3000:]
    assert "Traceback" not in outcome.stderr
    errors = outcome.errors
    assert errors and "params.yaml" in errors[0] and expected in outcome.stderr, errors
    assert outcome.heavy == [], f"imported before failing: {outcome.heavy}"
    assert after == before


@pytest.mark.parametrize("case", PER_SECTION, ids=[c[0] for c in PER_SECTION])
def test_stage_rejects_a_bad_section_fast(workdir: Path, case):
    name, stage, path, value, expected = case
    (workdir / "params.yaml").write_text(yaml.safe_dump(changed(path, value), sort_keys=False))
    before = listing(workdir)
    outcome = spawn(STAGES[stage], workdir)
    _check_config_failure(f"params {name} ({stage})", outcome, expected, before, listing(workdir))


@pytest.mark.parametrize("stage", list(STAGES))
def test_yaml_syntax_error_gives_line_and_column_from_every_stage(workdir: Path, stage: str):
    text = (workdir / "params.yaml").read_text()
    # A plausible slip: a missing space after the colon turns a mapping into a scalar.
    broken = text.replace("  validation_split: 0.1", "  validation_split:0.1\n   seed: 3")
    assert broken != text
    (workdir / "params.yaml").write_text(broken)
    line = broken.splitlines().index("   seed: 3") + 1
    before = listing(workdir)
    outcome = spawn(STAGES[stage], workdir)
    _check_config_failure(
        f"YAML syntax ({stage})", outcome, f"params.yaml:{line}:", before, listing(workdir)
    )
    assert "YAML syntax error" in outcome.stderr


@pytest.mark.parametrize(
    ("case", "text", "expected"),
    [
        ("empty file", "", "params.yaml is empty"),
        ("duplicate key", "seed:\n  seed: 1\n  seed: 2\n", "found the key 'seed' twice"),
        ("a list, not a mapping", "- data\n- models\n", "expected a mapping of sections"),
        ("tab indentation", "seed:\n\tseed: 1\n", "params.yaml:2:1"),
        ("not UTF-8", None, "cannot be read as UTF-8"),
    ],
)
def test_unreadable_params_files(workdir: Path, case: str, text: str | None, expected: str):
    target = workdir / "params.yaml"
    if text is None:
        target.write_bytes("seed:\n  seed: 1  # año\n".encode("latin-1"))
    else:
        target.write_text(text)
    before = listing(workdir)
    outcome = spawn(STAGES["preprocess"], workdir)
    _check_config_failure(f"params.yaml {case}", outcome, expected, before, listing(workdir))


def test_missing_params_file(tmp_path: Path):
    outcome = spawn(STAGES["train"], tmp_path)
    report("params.yaml missing (train)", outcome, "unchanged" if not listing(tmp_path) else "?")
    assert outcome.code == 2 and "params.yaml not found" in outcome.stderr
    assert outcome.heavy == [] and listing(tmp_path) == []
