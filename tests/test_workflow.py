"""The GitHub Actions workflow runs what the project promises: tests, the pipeline, the gate."""

from __future__ import annotations

import re

import pytest
import yaml

from intro_cnn.config import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


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


def test_runs_tests_then_pipeline_then_gate(workflow):
    runs = [s.get("run", "").strip() for s in steps(workflow)]
    order = [
        next(i for i, run in enumerate(runs) if cmd in run)
        for cmd in ("make test", "make repro", "make -s diff", "make gate")
    ]
    assert order == sorted(order)


def test_diff_against_main_goes_to_the_job_summary_and_the_gate(workflow):
    """Metrics and params against main, as markdown, even when the pipeline failed; the gate's
    regression rule compares with main too."""
    (diff,) = [s for s in steps(workflow) if "make -s diff" in s.get("run", "")]
    assert diff["if"] == "always()"
    fetch = "git fetch --no-tags --depth=1 origin +refs/heads/main:refs/remotes/origin/main"
    assert fetch in diff["run"]
    assert "make -s diff BASE=origin/main DIFF_ARGS=--md" in diff["run"]
    assert '>> "$GITHUB_STEP_SUMMARY"' in diff["run"]
    (gate,) = [s for s in steps(workflow) if s.get("run", "").startswith("make gate")]
    assert gate["run"] == 'make gate GATE_ARGS="--baseline origin/main"'


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
    for run in (s.get("run", "") for s in steps(workflow)):
        for target in re.findall(r"^make (\S+)", run, flags=re.M):
            assert target in targets, f"CI runs `make {target}` but the Makefile lacks it"
