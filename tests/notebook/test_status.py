"""The first cell's status: which pipeline outputs are missing, and what to run, in words."""

from __future__ import annotations

import pytest

from intro_cnn import config, i18n
from intro_cnn.notebook import status

NAMES = ("cnn", "cnn_small")


def _outputs(root, names=NAMES):
    for path in status.expected_outputs(names):
        target = root / path
        if path == config.RAW_IMAGE_DIR:
            target.mkdir(parents=True, exist_ok=True)
            target = target / "image.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"x")


def test_what_the_notebook_reads_is_expected():
    expected = status.expected_outputs(NAMES)
    for name in NAMES:
        assert config.model_path(name) in expected
        assert config.history_path(name) in expected
    assert config.COMPARE_METRICS in expected and config.COMPARE_CLAIMS in expected
    assert len(set(expected)) == len(expected)


@pytest.mark.parametrize("lang", i18n.LANGS)
def test_an_empty_folder_misses_everything_and_says_make_repro(tmp_path, lang):
    found = status.check(tmp_path, NAMES)
    assert not found.ready
    assert found.missing == tuple(status.expected_outputs(NAMES))
    message = found.message(lang)
    assert status.REPRO_COMMAND in message
    assert "models/cnn.keras" in message and "reports/train/cnn_small/history.csv" in message
    assert tmp_path.as_posix() in message


@pytest.mark.parametrize("lang", i18n.LANGS)
def test_a_complete_run_is_ready(tmp_path, lang):
    _outputs(tmp_path)
    found = status.check(tmp_path, NAMES)
    assert found.ready and found.missing == ()
    message = found.message(lang)
    assert status.REPRO_COMMAND not in message
    assert "cnn, cnn_small" in message and "2" in message


def test_one_missing_output_is_named_alone(tmp_path):
    _outputs(tmp_path)
    (tmp_path / config.COMPARE_CLAIMS).unlink()
    found = status.check(tmp_path, NAMES)
    assert found.missing == (config.COMPARE_CLAIMS,)
    assert "1" in found.message("es") and config.COMPARE_CLAIMS.as_posix() in found.message("en")


def test_an_empty_image_folder_is_missing(tmp_path):
    _outputs(tmp_path)
    (tmp_path / config.RAW_IMAGE_DIR / "image.jpg").unlink()
    assert status.check(tmp_path, NAMES).missing == (config.RAW_IMAGE_DIR,)


def test_the_two_languages_differ():
    found = status.Status(root=config.ROOT, names=NAMES, missing=())
    assert found.message("es") != found.message("en")
