"""The gate's proof that metrics belong to the models (intro_cnn/evaluation/evidence.py): the
comparison of what a file says with what the model measures, on hand-checked numbers."""

from __future__ import annotations

from intro_cnn import config
from intro_cnn.evaluation import evidence

MEASURED = evidence.Measured(
    {
        "cnn": {"test": {"accuracy": 0.9901, "loss": 0.0430}, "params": 61_482},
        "mlp": {"test": {"accuracy": 0.9807, "loss": 0.0707}, "params": 669_706},
    },
    n_test=10_000,
)
CHECKED = [("cnn", "test.accuracy"), ("mlp", "test.accuracy"), ("cnn", "test.accuracy")]


def test_one_and_a_half_test_images_is_the_tolerance():
    assert MEASURED.tolerance == 1.5e-4
    assert evidence.Measured({}, n_test=300).tolerance == 0.005


def test_the_measured_numbers_agree_with_themselves_and_within_one_image():
    recorded = {"cnn": {"test": {"accuracy": 0.9902}}, "mlp": {"test": {"accuracy": 0.9807}}}
    assert evidence.disagreements(MEASURED.metrics, MEASURED, CHECKED) == []
    assert evidence.disagreements(recorded, MEASURED, CHECKED) == []  # one image: 0.0001


def test_an_edited_value_is_named_once_with_both_numbers():
    recorded = {"cnn": {"test": {"accuracy": 0.9999}}, "mlp": {"test": {"accuracy": 0.9807}}}
    assert evidence.disagreements(recorded, MEASURED, CHECKED) == [
        "cnn.test.accuracy: reports/compare/metrics.json says 0.9999, models/cnn.keras "
        "measures 0.9901 on the 10000 test images"
    ]
    two_images = {"cnn": {"test": {"accuracy": 0.9899}}, "mlp": {"test": {"accuracy": 0.9807}}}
    assert len(evidence.disagreements(two_images, MEASURED, CHECKED)) == 1


def test_a_removed_or_non_numeric_value_disagrees_and_an_unmeasured_one_is_left_to_the_gate():
    recorded = {"cnn": {"test": {"accuracy": "0.99"}}, "mlp": {"test": {}}}
    lines = evidence.disagreements(recorded, MEASURED, CHECKED)
    assert [line.split(":")[0] for line in lines] == ["cnn.test.accuracy", "mlp.test.accuracy"]
    assert "says nothing" in lines[1]
    assert evidence.disagreements({}, MEASURED, [("vgg", "test.accuracy")]) == []
    assert evidence.disagreements({}, MEASURED, [("cnn", "test.top5")]) == []


def test_each_seed_is_checked_against_its_replicate_file_and_the_seed_set_against_params():
    per_seed = {"1": 0.98, "2": 0.981, "3": 0.979}
    entry = {"test": {"accuracy": 0.98}, "seeds": {"test_accuracy": {"per_seed": per_seed}}}
    measured = evidence.Measured({"mlp": entry}, n_test=10_000)
    checked = [("mlp", "test.accuracy")]
    assert evidence.disagreements({"mlp": entry}, measured, checked) == []
    edited = {"test": {"accuracy": 0.98}, "seeds": {"test_accuracy": {"per_seed": dict(per_seed)}}}
    edited["seeds"]["test_accuracy"]["per_seed"]["3"] = 0.99
    assert evidence.disagreements({"mlp": edited}, measured, checked) == [
        f"mlp seed 3: {config.COMPARE_METRICS} says 0.99, its model file measures 0.9790 "
        "on the 10000 test images"
    ]
    dropped = {"test": {"accuracy": 0.98}, "seeds": {"test_accuracy": {"per_seed": {"1": 0.98}}}}
    assert evidence.disagreements({"mlp": dropped}, measured, checked) == [
        f"mlp: {config.COMPARE_METRICS} has seeds 1, params.yaml trains it with seeds 1, 2, 3"
    ]
