"""Tests of ``python -m intro_cnn.commands.predict``: own images through the recipe and a real
network."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from intro_cnn.commands import predict as pr
from intro_cnn.data import digits
from tests.conftest import ROOT, run
from tests.data.test_digits import as_paper


@pytest.fixture
def photos(tmp_path, subset):
    """Five test digits as a user would photograph them: dark ink on light paper, JPEG."""
    out = []
    for i in range(5):
        path = tmp_path / f"digit{i}_{subset['y_test'][i]}.jpg"
        Image.fromarray((as_paper(subset["x_test"][i]) * 255).astype(np.uint8)).save(path)
        out.append(path)
    return out


def test_classify_matches_keras_predict(tiny_cnn, subset):
    import keras

    model = keras.saving.load_model(tiny_cnn, compile=False)
    x = subset["x_test"][:32].astype(np.float32) / 255.0
    probs = pr.classify(model, x)
    expected = model.predict(digits.as_tensor(x), verbose=0)
    assert probs.shape == (32, 10)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_top_three_and_json_shape():
    pred = pr.predictions(["a.png"], np.array([[0.05, 0.6, 0, 0, 0.3, 0, 0, 0.05, 0, 0]]))[0]
    assert pred.digit == 1
    assert pred.top() == [(1, 0.6), (4, 0.3), (0, 0.05)]
    assert set(pred.as_json()) == {"image", "digit", "probabilities"}
    assert "a.png: 1   top 3: 1 (60.0%), 4 (30.0%), 0 (5.0%)" in pr.format_text([pred], "m")


def test_runners_up_are_ranked_on_the_exact_probabilities():
    """A confident network leaves the others at 1e-7 and below: rounded to six places they all
    tie at 0 and the ranking would fall back to index order (always 9, 8)."""
    p = np.array([[4e-8, 3e-7, 1e-9, 9.9999e-1, 2e-9, 5e-9, 1e-10, 8e-7, 6e-8, 3e-9]])
    p[0, 3] = 1 - (p.sum() - p[0, 3])
    pred = pr.predictions(["a.png"], p)[0]
    assert [d for d, _ in pred.top()] == [3, 7, 1]
    assert pred.as_json()["probabilities"][7] == 8e-7  # what a JSON reader ranks is exact too


def test_a_bad_file_in_a_batch_is_named_and_the_others_are_classified(
    tiny_cnn, photos, tmp_path, capsys
):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    batch = [photos[0], broken, photos[1]]
    with pytest.raises(SystemExit) as exit_info:
        pr.main(["--model", str(tiny_cnn), "--json", *map(str, batch)])
    assert exit_info.value.code == 1
    out, err = capsys.readouterr()
    assert [json.loads(line)["image"] for line in out.splitlines()] == [
        str(photos[0]),
        str(photos[1]),
    ]
    assert f"error: {broken}: " in err and "not an image" in err
    assert pr.unreadable_summary(1, 3) in err
    with pytest.raises(SystemExit) as exit_info:  # nothing readable: nothing printed, exit 1
        pr.main(["--model", str(tiny_cnn), str(broken)])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1 and out == ""
    assert pr.unreadable_summary(1, 1) in err


def test_cli_json_text_and_explain(tiny_cnn, photos, tmp_path, capsys):
    pr.main(["--model", str(tiny_cnn), "--json", *map(str, photos)])
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["image"] for r in rows] == [str(p) for p in photos]
    for r in rows:
        assert len(r["probabilities"]) == 10 and abs(sum(r["probabilities"]) - 1) < 1e-4
        assert r["digit"] == int(np.argmax(r["probabilities"]))
    # No Keras progress bar anywhere.
    assert "/step" not in out + err and "━" not in out + err

    shot = tmp_path / "explain.png"
    pr.main(["--model", str(tiny_cnn), "--explain", str(shot), str(photos[0])])
    out, err = capsys.readouterr()
    assert out.startswith(f"model: {tiny_cnn}\n") and "top 3:" in out
    with Image.open(shot) as img:
        assert img.format == "PNG" and img.width > 600
    assert "/step" not in out + err


def test_cli_errors_name_the_file_and_the_fix(tiny_cnn, photos, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 64), "white").save(blank)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    for path, message in [
        (blank, "blank"),
        (broken, "not an image"),
        (tmp_path / "no.png", "no such"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            pr.main(["--model", str(tiny_cnn), str(path)])
        assert exit_info.value.code == 1
        err = capsys.readouterr().err
        assert str(path) in err and message in err
    with pytest.raises(SystemExit):
        pr.main(["--model", str(tmp_path / "none.keras"), str(photos[0])])
    assert "none.keras: no such model file" in capsys.readouterr().err


def test_missing_model_says_how_to_train_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'absent.db'}")
    with pytest.raises(pr.PredictError, match=r"dvc repro train@cnn_small"):
        pr.load_model("cnn_small")
    assert not (tmp_path / "absent.db").exists()  # asking did not create a store


@pytest.mark.slow
def test_module_runs_as_a_command(tiny_cnn, photos):
    out = run(
        [
            sys.executable,
            "-m",
            "intro_cnn.commands.predict",
            "--model",
            str(tiny_cnn),
            str(photos[0]),
        ],
        cwd=ROOT,
    )
    assert "top 3:" in out.stdout and "/step" not in out.stdout + out.stderr
    bad = run(
        [sys.executable, "-m", "intro_cnn.commands.predict", str(ROOT / "README.md")],
        ROOT,
        check=False,
    )
    assert bad.returncode == 1 and "README.md" in bad.stderr


@pytest.mark.slow
def test_the_registry_champion_comes_first(
    tmp_path, tiny_cnn, photos, monkeypatch, capsys, new_store
):
    import mlflow

    from intro_cnn.tracking import serving

    uri = new_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # no models/cnn.keras here: only the registry can answer
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("predict-test")
    with mlflow.start_run():
        info = serving.log_model(tiny_cnn, registered_model_name=pr.registered_name("cnn"))
    client = mlflow.MlflowClient(uri)
    with pytest.raises(pr.PredictError):  # registered, but no champion yet
        pr.load_model("cnn")
    client.set_registered_model_alias(
        pr.registered_name("cnn"), pr.CHAMPION_ALIAS, info.registered_model_version
    )
    pr.main(["--json", str(photos[0])])
    from_registry = json.loads(capsys.readouterr().out)
    pr.main(["--model", str(tiny_cnn), "--json", str(photos[0])])
    from_file = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(
        from_registry["probabilities"], from_file["probabilities"], atol=1e-6
    )
    assert pr.load_model("cnn")[1] == "models:/intro-cnn-cnn@champion"
