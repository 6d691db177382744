"""The model registry: one registered model per architecture, ``intro-cnn-<model>``, and the
``@champion`` alias ``make gate`` points at the versions that passed its checks."""

from __future__ import annotations

from collections.abc import Mapping

from intro_cnn.tracking.mlflow_calls import quiet_mlflow
from intro_cnn.tracking.mlflow_store import TrackingError, relocate_store, store_lock

# The predict stage and `mlflow models serve -m models:/intro-cnn-cnn@champion` rely on this
# naming.
REGISTERED_MODEL_PREFIX = "intro-cnn-"
CHAMPION_ALIAS = "champion"
# The model version's tag holding the SHA-256 of the .keras file it was registered from.
MODEL_FILE_TAG = "intro_cnn.model_sha256"


def registered_model_name(model: str) -> str:
    """The registered model holding every version of architecture ``model``."""
    return f"{REGISTERED_MODEL_PREFIX}{model}"


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
