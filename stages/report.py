"""The ``report`` stage of dvc.yaml: the pipeline's results as one self-contained page.

Reads every upstream output (:mod:`intro_cnn.reporting.report_inputs`), renders the page in
``report.lang`` (:mod:`intro_cnn.reporting.report`) and writes ``reports/index.html``.
"""

from __future__ import annotations

import logging

from intro_cnn import config
from intro_cnn.reporting import report, report_inputs
from intro_cnn.runtime import cli, files

log = logging.getLogger("stages.report")


def main() -> None:
    with cli.stage("report"):
        params = config.load_params()
        inputs = report_inputs.read_inputs(list(params.models))
        page = report.build_html(inputs, params.report.lang)
        with cli.committing():
            files.write_text(config.REPORT_HTML, page)
    n_figures = len(inputs.conv_figures) + len(inputs.network_figures)
    log.info(
        "%s: %d figures, %d models, %.1f MB (%s)",
        config.REPORT_HTML,
        n_figures,
        len(inputs.summaries),
        len(page.encode("utf-8")) / 1e6,
        params.report.lang,
    )


if __name__ == "__main__":
    cli.run_main(main)
