"""The GitHub Actions workflow runs what the project promises: tests, the pipeline, the gate."""

from __future__ import annotations

import re

import pytest
import yaml

from intro_cnn.config import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
CI_SCRIPT = ROOT / ".ci" / "run"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(workflow: dict) -> list[dict]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def test_triggers_and_runner(workflow):
    # PyYAML reads the bare key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    assert {"push", "pull_request"} <= set(triggers)
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"


def test_setup_python(workflow):
    (setup,) = [s for s in steps(workflow) if s.get("uses", "").startswith("actions/setup-python")]
    assert setup["uses"] == "actions/setup-python@v5"
    assert setup["with"] == {
        "python-version": "3.11",
        "cache": "pip",
        "cache-dependency-path": "requirements.lock",
    }


def test_github_runs_the_same_ci_script_against_main(workflow):
    """One CI script: the workflow fetches main (the baseline) and runs .ci/run with it, as a
    local CI run does with HEAD."""
    runs = [s.get("run", "").strip() for s in steps(workflow)]
    fetch = "git fetch --no-tags --depth=1 origin +refs/heads/main:refs/remotes/origin/main"
    (ci,) = [s for s in steps(workflow) if s.get("run", "").strip() == ".ci/run"]
    assert ci["env"] == {"CI_BASELINE": "origin/main"}
    assert runs.index(fetch) < runs.index(".ci/run")
    assert not [r for r in runs if r.startswith("make")], "steps beside .ci/run drift from it"


def test_ci_script_runs_tests_then_pipeline_then_diff_then_gate():
    script = CI_SCRIPT.read_text()
    order = [
        script.index(cmd)
        for cmd in (
            "\nmake test\n",
            "ONEDNN_MAX_CPU_ISA=AVX2 make test-quick",
            "\nmake repro\n",
            'make -s diff BASE="$BASELINE"',
            'make gate GATE_ARGS="--baseline $BASELINE"',
        )
    ]
    assert order == sorted(order)
    assert 'BASELINE="${CI_BASELINE:-HEAD}"' in script
    assert 'DIFF_ARGS=--md\n  } >>"$GITHUB_STEP_SUMMARY"' in script


def test_uploads_reports_even_on_failure(workflow):
    (upload,) = [s for s in steps(workflow) if "upload-artifact" in s.get("uses", "")]
    assert upload["uses"] == "actions/upload-artifact@v4"
    assert upload["if"] == "always()"
    assert upload["with"]["path"].rstrip("/") == "reports"
    assert steps(workflow)[-1] is upload


def test_make_targets_exist(workflow):
    makefile = ROOT / "Makefile"
    assert makefile.exists(), "Makefile missing: the CI workflow runs make test, repro and gate."
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:", makefile.read_text(), flags=re.M))
    for run in [CI_SCRIPT.read_text()]:
        for target in re.findall(r"^\s*(?:\S+=\S+ )?make (?:-s )?([a-z-]+)", run, flags=re.M):
            assert target in targets, f"CI runs `make {target}` but the Makefile lacks it"
