"""The ``convolutions`` stage: the notebook's convolution demos (a random walk smoothed, the
demo image blurred and edge-filtered) as figures, with a summary of their numbers."""

from __future__ import annotations

import logging

from intro_cnn import config
from intro_cnn.demos import convolutions
from intro_cnn.reporting import playground_inputs
from intro_cnn.runtime import cli, files

log = logging.getLogger(__name__)


def main() -> None:
    with cli.stage("convolutions"):
        params = config.load_params()
        image_path = config.raw_image_path()
        image = convolutions.read_image(image_path, params.convolutions.gauss_taps)
        arrays = convolutions.compute_all(params.convolutions, image)
        pngs = convolutions.render(arrays, params.report.lang, params.report.dpi)
        summary = convolutions.stage_summary(arrays, image_path)
        live = playground_inputs.playground_data(arrays, params.convolutions)
        with cli.committing():
            for name, data in pngs.items():
                files.write_bytes(config.CONV_DIR / name, data)
            files.write_json(config.CONV_SUMMARY, summary)
            files.write_json(config.CONV_PLAYGROUND, live)
    log.info(
        "%d figures (%s, %d dpi), %s and %s -> %s",
        len(pngs),
        params.report.lang,
        params.report.dpi,
        config.CONV_SUMMARY.name,
        config.CONV_PLAYGROUND.name,
        config.CONV_DIR,
    )


if __name__ == "__main__":
    cli.run_main(main)
