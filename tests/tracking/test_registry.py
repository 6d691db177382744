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


def test_describing_a_missing_registered_model_creates_it(client):
    registry.describe_registered_model(client, "mlp", ["Flatten", "Dense"], 669_706)
    assert "669,706 parameters" in client.get_registered_model("intro-cnn-mlp").description


def _logged(client, model: str, digest: str) -> str:
    experiment = client.get_experiment_by_name("intro-cnn")
    experiment = experiment.experiment_id if experiment else client.create_experiment("intro-cnn")
    run = client.create_run(experiment)
    logged = client.create_logged_model(experiment, name=model, source_run_id=run.info.run_id)
    client.set_logged_model_tags(
        logged.model_id, registry.logged_model_tags(LAYERS, 1_000 + len(model), digest)
    )
    return logged.model_id


def test_promote_registers_the_logged_models_and_crowns_them_once(client):
    uri = client.tracking_uri
    first = {"cnn": _logged(client, "cnn", "a" * 64), "mlp": _logged(client, "mlp", "b" * 64)}
    assert registry.promote(uri, first) == {"intro-cnn-cnn": "1", "intro-cnn-mlp": "1"}
    champion = client.get_model_version_by_alias("intro-cnn-cnn", registry.CHAMPION_ALIAS)
    assert champion.source == registry.logged_model_uri(first["cnn"])
    assert champion.tags[tracking.MODEL_FILE_TAG] == "a" * 64
    assert "1,003 parameters" in client.get_registered_model("intro-cnn-cnn").description

    # The same logged models again: no new version. A retrained cnn: version 2 is champion.
    assert registry.promote(uri, first) == {"intro-cnn-cnn": "1", "intro-cnn-mlp": "1"}
    second = {**first, "cnn": _logged(client, "cnn", "c" * 64)}
    assert registry.promote(uri, second) == {"intro-cnn-cnn": "2", "intro-cnn-mlp": "1"}
    assert len(client.search_model_versions("name='intro-cnn-cnn'")) == 2


def test_a_logged_model_missing_from_the_store_is_named(client):
    with pytest.raises(tracking.TrackingError, match="is not in the MLflow store"):
        registry.promote(client.tracking_uri, {"cnn": "m-0123456789abcdef0123456789abcdef"})


def test_an_alias_move_that_fails_puts_every_moved_champion_back(client):
    """All or none: cnn had a champion (version 1), mlp none; both are moved, then the block
    fails: cnn is back at version 1 and mlp has no champion."""
    uri = client.tracking_uri
    registry.promote(uri, {"cnn": _logged(client, "cnn", "a" * 64)})
    versions = registry.promote(
        uri, {"cnn": _logged(client, "cnn", "c" * 64), "mlp": _logged(client, "mlp", "b" * 64)}
    )
    client.set_registered_model_alias("intro-cnn-cnn", registry.CHAMPION_ALIAS, "1")
    client.delete_registered_model_alias("intro-cnn-mlp", registry.CHAMPION_ALIAS)
    before = {"intro-cnn-cnn": "1", "intro-cnn-mlp": None}
    with (
        pytest.raises(RuntimeError, match="server gone"),
        registry.all_or_none(client, before) as moved,
    ):
        for name, version in versions.items():
            client.set_registered_model_alias(name, registry.CHAMPION_ALIAS, version)
            moved.append(name)
        raise RuntimeError("server gone")
    assert registry.champion_of(client, "intro-cnn-cnn") == "1"
    assert registry.champion_of(client, "intro-cnn-mlp") is None
