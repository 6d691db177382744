"""The ``visualize`` stage of dvc.yaml: the network figures, and ``index.json`` listing them.

Renders every figure first (:func:`intro_cnn.reporting.visualize.render_figures`), then fills
the new figures folder, logs it to this pipeline execution's MLflow parent run and swaps it in
whole, so a failure at any step leaves the previous figures.
"""

from __future__ import annotations

import logging

from intro_cnn import config
from intro_cnn.reporting import visualize
from intro_cnn.runtime import cli, files
from intro_cnn.tracking import mlflow_store

log = logging.getLogger("stages.visualize")


def main() -> None:
    with cli.stage("visualize"):
        params = config.load_params()
        uri = mlflow_store.tracking_uri()
        mlflow_store.probe_store(uri)
        names = list(params.models)
        report = params.report
        entries, contents = visualize.render_figures(
            names, report.lang, report.n_feature_images, report.dpi
        )
        # The new folder is filled and logged to MLflow first, then swapped in whole.
        with cli.committing(), files.atomic_dir(config.NETWORK_DIR) as staged:
            visualize.write_outputs_into(staged, contents)
            parent = visualize.log_figures(
                uri,
                params.train.experiment,
                visualize.upstream_runs(names),
                [staged / entry.file for entry in entries],
            )
        log.info(
            "%d figures (%s, %d dpi) -> %s",
            len(entries),
            report.lang,
            report.dpi,
            config.NETWORK_DIR,
        )
        log.info("figures logged to MLflow run %s", parent)


if __name__ == "__main__":
    cli.run_main(main)
