"""The registry's page in the MLflow UI: each registered model's description and tags, and
Markdown the UI renders without dropping ``<model>`` as HTML."""

from __future__ import annotations

import re

import pytest

from intro_cnn import tracking
from intro_cnn.tracking import registry

LAYERS = ["Conv2D", "MaxPooling2D", "Flatten", "Dense"]
CODE_SPAN = re.compile(r"`[^`]*`")


def outside_code(markdown: str) -> str:
    return CODE_SPAN.sub("", markdown)


@pytest.mark.parametrize(
    "markdown",
    [
        tracking.EXPERIMENT_DESCRIPTION,
        registry.registered_model_card("cnn", LAYERS, 61_482)["description"],
    ],
    ids=["experiment", "registered model"],
)
def test_angle_brackets_stay_inside_code(markdown):
    assert markdown.count("`") % 2 == 0
    assert "<" not in outside_code(markdown) and ">" not in outside_code(markdown)


def test_the_card_names_the_network_its_size_and_how_to_serve_it():
    card = registry.registered_model_card("cnn_small", LAYERS, 5_258)
    assert card["name"] == "intro-cnn-cnn_small"
    text = card["description"]
    assert "Conv2D → MaxPooling2D → Flatten → Dense" in text and "5,258 parameters" in text
    assert "models:/intro-cnn-cnn_small@champion" in text and "train@cnn_small" in text
    assert card["tags"][tracking.tags.PARAMETERS_TAG] == "5258"
    assert card["tags"]["framework"] == "keras"


@pytest.fixture
def client(tmp_path, new_store):
    from mlflow import MlflowClient

    return MlflowClient(new_store(tmp_path / "store" / "mlflow.db"))


def test_a_registered_model_is_described_once_and_updated_when_it_changes(client):
    name = registry.registered_model_name("cnn")
    client.create_registered_model(name)
    registry.describe_registered_model(client, "cnn", LAYERS, 61_482)
    first = client.get_registered_model(name)
    assert first.description == registry.registered_model_card("cnn", LAYERS, 61_482)["description"]
    assert first.tags[tracking.tags.LAYERS_TAG] == "Conv2D → MaxPooling2D → Flatten → Dense"
    assert first.tags["task"] == "MNIST digit classification"

    registry.describe_registered_model(client, "cnn", LAYERS, 61_482)
    again = client.get_registered_model(name)
    assert again.last_updated_timestamp == first.last_updated_timestamp  # nothing rewritten

    registry.describe_registered_model(client, "cnn", [*LAYERS, "Dense"], 70_000)
    changed = client.get_registered_model(name)
    assert "70,000 parameters" in changed.description
    assert changed.tags[tracking.tags.PARAMETERS_TAG] == "70000"
