"""The shared stage wrapper: real signals sent to this process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from intro_cnn.runtime import cli, errors, tf_import
from tests.conftest import ROOT


def test_a_signal_during_a_gentle_block_stops_the_loop_and_is_raised_at_its_end():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    stops: list[int] = []
    steps = 0
    with pytest.raises(cli.Terminated), cli.stopping_gently(lambda: stops.append(steps)):
        while not stops and steps < 1000:
            steps += 1
            if steps == 3:
                os.kill(os.getpid(), signal.SIGTERM)
    assert stops == [3]  # the loop ran on to its own check, nothing was raised inside it
    assert signal.getsignal(signal.SIGTERM) == before[signal.SIGTERM]  # handlers restored
    assert signal.getsignal(signal.SIGINT) == before[signal.SIGINT]


def test_a_second_signal_is_delivered_at_once():
    with pytest.raises(KeyboardInterrupt) as caught, cli.stopping_gently(lambda: None):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        pytest.fail("the second Ctrl-C should have interrupted the block")
    assert not isinstance(caught.value, cli.Terminated)


def test_no_signal_no_exception():
    with cli.stopping_gently(lambda: pytest.fail("stop called without a signal")):
        pass


def test_committing_holds_a_signal_until_the_outputs_are_written(tmp_path):
    written = []
    with pytest.raises(cli.Terminated), cli.committing():
        os.kill(os.getpid(), signal.SIGTERM)
        written.append("a")
        written.append("b")
    assert written == ["a", "b"]


def test_tensorflow_start_up_notices_are_dropped_and_nothing_else():
    code = (
        "import os, sys\n"
        "from intro_cnn.runtime import tf_import\n"
        "with tf_import.importing_tensorflow():\n"
        "    import tensorflow\n"
        "    os.write(2, b'kept line\\n')\n"
        "for name in tf_import.TENSORFLOW_IMPORT_SKIPS:\n"
        "    assert name not in sys.modules, f'{name} was imported with TensorFlow'\n"
        "import keras\n"
        "assert keras.layers.Dense(3)(tensorflow.ones((2, 4))).shape == (2, 3)\n"
        "import sklearn.base, matplotlib.figure  # importable as usual afterwards\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=ROOT,  # this checkout's intro_cnn package
    )
    assert "kept line" in out.stderr
    assert not any(notice in out.stderr for notice in tf_import.TF_START_UP_NOTICES)


@pytest.mark.parametrize(("setting", "expected"), [(None, True), ("0", False), ("1", True)])
def test_tensorflow_gets_onednn_kernels_unless_the_user_turned_them_off(setting, expected):
    """TensorFlow enables oneDNN by itself only on AVX-512 VNNI/BF16/AMX CPUs; imported through
    importing_tensorflow it has it on any CPU, and TF_ENABLE_ONEDNN_OPTS=0 still turns it off."""
    code = (
        "import os\n"
        "from intro_cnn.runtime import tf_import\n"
        "with tf_import.importing_tensorflow():\n"
        "    import tensorflow\n"
        "from tensorflow.python.util import _pywrap_util_port\n"
        "print(_pywrap_util_port.IsMklEnabled(), tf_import.onednn_enabled())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != tf_import.ONEDNN_SWITCH}
    if setting is not None:
        env[tf_import.ONEDNN_SWITCH] = setting
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=ROOT
    )
    assert out.stdout.split() == [str(expected), str(expected)]


@pytest.mark.parametrize("exit_code", [0, 3])
def test_run_main_freezes_what_is_left_and_keeps_exit_codes_and_atexit(exit_code):
    """A program run through run_main exits with main's status, its atexit handlers and logging
    still run, and every object left is frozen (so the last collection has nothing to walk)."""
    code = (
        "import atexit, gc, logging, sys\n"
        "from intro_cnn.runtime import cli\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 1000, flush=True))\n"
        "def main():\n"
        "    logging.getLogger('x').info('logged')\n"
        f"    sys.exit({exit_code})\n"
        "cli.run_main(main)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == exit_code
    assert out.stdout.strip() == "frozen True"
    assert "INFO:x:logged" in out.stderr


# What a stage says when a signal stops it, by where the signal came (real signals, in-process).
def _stopped(caplog, monkeypatch, where: str, sig=signal.SIGTERM, dvc_stage: str | None = None):
    if dvc_stage is None:
        monkeypatch.delenv("DVC_STAGE", raising=False)
    else:
        monkeypatch.setenv("DVC_STAGE", dvc_stage)
    written: list[str] = []
    with pytest.raises(SystemExit) as exited, cli.stage("train cnn"):
        if where == "before":
            os.kill(os.getpid(), sig)
        with cli.committing():
            if where == "during":
                os.kill(os.getpid(), sig)
            written += ["model", "metrics"]
        if where == "after":
            os.kill(os.getpid(), sig)
        pytest.fail("the signal should have stopped the stage")
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors
    return exited.value.code, errors[0], written


def test_a_signal_before_the_commit_says_nothing_was_written(caplog, monkeypatch):
    code, message, written = _stopped(caplog, monkeypatch, "before")
    assert (code, written) == (143, [])
    assert message == (
        "train cnn: terminated (SIGTERM) before writing its outputs: none was written, "
        "no partial outputs were left."
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_commit_says_the_outputs_were_written_and_how_to_record_them(
    caplog, monkeypatch, sig
):
    code, message, written = _stopped(caplog, monkeypatch, "during", sig)
    assert code == 128 + sig and written == ["model", "metrics"]
    how = "terminated (SIGTERM)" if sig == signal.SIGTERM else "interrupted (Ctrl-C)"
    assert message.startswith(
        f"train cnn: {how}, but only after its outputs were completely written (it came "
        "while they were being written and was held until the last file was in place). "
        "DVC has not recorded them (dvc.lock was not updated): run `dvc commit -f train@cnn`"
    )
    assert "A plain `dvc repro train@cnn` would not" in message
    assert "no partial outputs" not in message and "none was written" not in message


def test_a_signal_after_the_commit_says_so_and_names_dvcs_stage(caplog, monkeypatch):
    code, message, _ = _stopped(caplog, monkeypatch, "after", dvc_stage="train@cnn_small")
    assert code == 143
    assert "only after its outputs were completely written (it came after the last " in message
    assert "`dvc commit -f train@cnn_small`" in message  # DVC's own name for the stage


def test_a_new_stage_forgets_the_last_ones_commit(caplog, monkeypatch):
    with pytest.raises(SystemExit), cli.stage("first"):
        with cli.committing():
            pass
        raise errors.StageError("after its commit")
    caplog.clear()
    code, message, _ = _stopped(caplog, monkeypatch, "before")
    assert code == 143 and "none was written" in message
