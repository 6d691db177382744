"""The model registry: one registered model per architecture, ``intro-cnn-<model>``, and the
``@champion`` alias ``make gate`` points at the versions that passed its checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from intro_cnn.tracking.mlflow_calls import quiet_mlflow
from intro_cnn.tracking.mlflow_store import TrackingError, relocate_store, store_lock
from intro_cnn.tracking.tags import (
    LAYERS_TAG,
    PARAMETERS_TAG,
    REGISTERED_MODEL_DESCRIPTION,
    REGISTERED_MODEL_TAGS,
)

# The predict stage and `mlflow models serve -m models:/intro-cnn-cnn@champion` rely on this
# naming.
REGISTERED_MODEL_PREFIX = "intro-cnn-"
CHAMPION_ALIAS = "champion"
# The model version's tag holding the SHA-256 of the .keras file it was registered from.
MODEL_FILE_TAG = "intro_cnn.model_sha256"


def registered_model_name(model: str) -> str:
    """The registered model holding every version of architecture ``model``."""
    return f"{REGISTERED_MODEL_PREFIX}{model}"


def registered_model_card(model: str, layers: Sequence[str], parameters: int) -> dict[str, Any]:
    """What the MLflow UI shows on ``intro-cnn-<model>``'s page: its description (the network,
    how it is trained, served and fed) and its tags."""
    name = registered_model_name(model)
    architecture = " → ".join(layers)
    description = REGISTERED_MODEL_DESCRIPTION.format(
        model=model, architecture=architecture, parameters=f"{parameters:,}", name=name
    )
    tags = {**REGISTERED_MODEL_TAGS, LAYERS_TAG: architecture, PARAMETERS_TAG: str(parameters)}
    return {"name": name, "description": description, "tags": tags}


def describe_registered_model(
    client: Any, model: str, layers: Sequence[str], parameters: int
) -> None:
    """Write :func:`registered_model_card` onto the registered model, changing only what
    differs (the caller holds the store's lock)."""
    card = registered_model_card(model, layers, parameters)
    current = client.get_registered_model(card["name"])
    if (current.description or "") != card["description"]:
        client.update_registered_model(card["name"], description=card["description"])
    for key, value in card["tags"].items():
        if current.tags.get(key) != value:
            client.set_registered_model_tag(card["name"], key, value)


def set_champions(uri: str, versions: Mapping[str, str]) -> dict[str, str]:
    """Point ``@champion`` of ``intro-cnn-<model>`` at each given version (``make gate`` does
    this when every check passes); return {registered model: version}."""
    import mlflow
    from mlflow.exceptions import MlflowException

    quiet_mlflow()
    done = {}
    with store_lock(uri):
        relocate_store(uri)
        client = mlflow.MlflowClient(uri)
        for model, version in versions.items():
            name = registered_model_name(model)
            try:
                client.get_model_version(name, str(version))
            except MlflowException as exc:
                raise TrackingError(
                    f"{name} version {version} is not in the MLflow store {uri}: retrain "
                    f"(`dvc repro train@{model}`) so the model is registered here."
                ) from exc
        for model, version in versions.items():
            name = registered_model_name(model)
            client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version))
            done[name] = str(version)
    return done
