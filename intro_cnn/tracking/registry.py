"""The model registry: one registered model per architecture, ``intro-cnn-<model>``, holding
the versions ``make gate`` promoted, and the ``@champion`` alias on the newest of them.

Trainings register nothing: each logs its model as an MLflow logged model tagged with the
digest of its ``.keras`` file and its card (:func:`logged_model_tags`), which any teammate may
do. Only the gate registers: :func:`promote` turns the logged models it measured into versions
and moves every ``@champion`` to them, all or none. On a server with MLflow's authentication
app, registering and moving an alias both need EDIT on the registered model, so only the
identity the gate runs as (the team's CI) may change what is served
(:mod:`intro_cnn.tracking.identity`, ``docs/team.md``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from intro_cnn.tracking.identity import refusal
from intro_cnn.tracking.mlflow_calls import quiet_mlflow
from intro_cnn.tracking.mlflow_store import TrackingError, relocate_store, store_lock
from intro_cnn.tracking.tags import (
    LAYERS_TAG,
    PARAMETERS_TAG,
    REGISTERED_MODEL_DESCRIPTION,
    REGISTERED_MODEL_TAGS,
)

log = logging.getLogger(__name__)

# The predict stage and `mlflow models serve -m models:/intro-cnn-cnn@champion` rely on this
# naming.
REGISTERED_MODEL_PREFIX = "intro-cnn-"
CHAMPION_ALIAS = "champion"
# The logged model's (and its registered version's) tag holding the SHA-256 of the .keras file.
MODEL_FILE_TAG = "intro_cnn.model_sha256"
LAYER_SEPARATOR = " → "


def registered_model_name(model: str) -> str:
    """The registered model holding every promoted version of architecture ``model``."""
    return f"{REGISTERED_MODEL_PREFIX}{model}"


def logged_model_tags(layers: Sequence[str], parameters: int, model_sha256: str) -> dict[str, str]:
    """What a training tags its logged model with: the file's digest, which the gate checks
    before it promotes the model, and the network's layers and size, which become the card."""
    return {
        MODEL_FILE_TAG: model_sha256,
        LAYERS_TAG: LAYER_SEPARATOR.join(layers),
        PARAMETERS_TAG: str(parameters),
    }


def logged_model_uri(model_id: str) -> str:
    """The ``models:/`` URI of a logged model: the source of the version registered from it."""
    return f"models:/{model_id}"


def registered_model_card(model: str, layers: Sequence[str], parameters: int) -> dict[str, Any]:
    """What the MLflow UI shows on ``intro-cnn-<model>``'s page: its description (the network,
    how it is trained, served and fed) and its tags."""
    name = registered_model_name(model)
    architecture = LAYER_SEPARATOR.join(layers)
    description = REGISTERED_MODEL_DESCRIPTION.format(
        model=model, architecture=architecture, parameters=f"{parameters:,}", name=name
    )
    tags = {**REGISTERED_MODEL_TAGS, LAYERS_TAG: architecture, PARAMETERS_TAG: str(parameters)}
    return {"name": name, "description": description, "tags": tags}


def describe_registered_model(
    client: Any, model: str, layers: Sequence[str], parameters: int
) -> None:
    """Write :func:`registered_model_card` onto the registered model, creating it if needed and
    changing only what differs (the caller holds the store's lock)."""
    from mlflow.exceptions import MlflowException

    card = registered_model_card(model, layers, parameters)
    try:
        current = client.get_registered_model(card["name"])
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        current = client.create_registered_model(card["name"])
    if (current.description or "") != card["description"]:
        client.update_registered_model(card["name"], description=card["description"])
    for key, value in card["tags"].items():
        if current.tags.get(key) != value:
            client.set_registered_model_tag(card["name"], key, value)


def register(client: Any, model: str, logged: Any) -> str:
    """The version of ``intro-cnn-<model>`` made from the logged model ``logged``: the one
    already registered from it, else a new one carrying its digest tag. Describes the
    registered model from the logged model's tags (the caller holds the store's lock)."""
    name = registered_model_name(model)
    tags = logged.tags or {}
    layers = tags.get(LAYERS_TAG, "").split(LAYER_SEPARATOR) if tags.get(LAYERS_TAG) else []
    describe_registered_model(client, model, layers, int(tags.get(PARAMETERS_TAG) or 0))
    source = logged_model_uri(logged.model_id)
    for version in client.search_model_versions(f"name='{name}'"):
        if version.source == source:
            return str(version.version)
    created = client.create_model_version(
        name,
        source=source,
        run_id=logged.source_run_id,
        model_id=logged.model_id,
        tags={MODEL_FILE_TAG: tags.get(MODEL_FILE_TAG, "")},
    )
    return str(created.version)


def champion_of(client: Any, name: str) -> str | None:
    """The version ``@champion`` names now, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, CHAMPION_ALIAS).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


@contextlib.contextmanager
def all_or_none(client: Any, before: Mapping[str, str | None]) -> Iterator[list[str]]:
    """Move aliases inside the block, appending each registered model's name once moved; if
    the block raises, put every moved ``@champion`` back where ``before`` had it."""
    moved: list[str] = []
    try:
        yield moved
    except BaseException:
        left = []
        for name in reversed(moved):
            try:
                if before[name] is None:
                    client.delete_registered_model_alias(name, CHAMPION_ALIAS)
                else:
                    client.set_registered_model_alias(name, CHAMPION_ALIAS, before[name])
            except Exception:  # say what stays moved; the first error is raised
                left.append(name)
        if left:
            log.error(
                "could not move @%s back on %s: check them in the MLflow UI",
                CHAMPION_ALIAS,
                ", ".join(left),
            )
        raise


def promote(uri: str, logged_models: Mapping[str, str]) -> dict[str, str]:
    """Register each ``{model: logged model id}`` as a version of ``intro-cnn-<model>`` (or
    reuse the version already made from it), then point every ``@champion`` at them: all move,
    or none does. Returns {registered model: version}.

    A refusal of the server (HTTP 401 or 403) raises :class:`TrackingError` with the project's
    sentence: which identity was refused what, and what to set instead."""
    import mlflow
    from mlflow.exceptions import MlflowException

    quiet_mlflow()
    with store_lock(uri):
        relocate_store(uri)
        mlflow.set_tracking_uri(uri)  # MLflow resolves a version's models:/ source through it
        client = mlflow.MlflowClient(uri)
        step = "read the logged models"
        try:
            found = {m: client.get_logged_model(i) for m, i in logged_models.items()}
            step = "register the versions"
            versions = {m: register(client, m, found[m]) for m in logged_models}
            names = {m: registered_model_name(m) for m in versions}
            before = {names[m]: champion_of(client, names[m]) for m in versions}
            step = f"move @{CHAMPION_ALIAS}"
            with all_or_none(client, before) as moved:
                for model, version in versions.items():
                    client.set_registered_model_alias(names[model], CHAMPION_ALIAS, version)
                    moved.append(names[model])
        except MlflowException as exc:
            said = refusal(exc, step)
            if said:
                raise TrackingError(said) from None
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST" and step == "read the logged models":
                raise TrackingError(
                    f"a logged model named in reports/train/*/run.json is not in the MLflow "
                    f"store {uri}: retrain (`dvc repro -f train@<model>`) with this store"
                ) from None
            raise
    return {names[m]: v for m, v in versions.items()}
