"""What the project's MLflow calls share: MLflow's chatter kept out of stage logs, and the
current time in MLflow's unit (milliseconds)."""

from __future__ import annotations

import logging
import os
import time


def now_ms() -> int:
    return int(time.time() * 1000)


def quiet_mlflow() -> None:
    """Silence MLflow's per-call chatter (alembic migrations, emoji links) in stage logs."""
    for name in ("alembic", "mlflow.store.db.utils", "mlflow.tracking._tracking_service"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
