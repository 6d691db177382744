"""What dvc.yaml's sub-package dependencies cost in reruns, against per-module dependencies.

Each stage depends on the sub-packages its entry point imports (tests/project/test_layout.py), so an
edit anywhere in a sub-package reruns every stage that uses any module of it. The finest
truthful alternative, a dependency per module the stage imports transitively, reruns only the
stages whose import closure holds the edited module. For every library module this prints how
many stages (foreach keys expanded) each rule reruns and their cold wall seconds, then the
totals per sub-package: an edit made once in every module.

Stage seconds come from ``--seconds`` (a JSON of stage name to wall seconds; default
benchmarks/stage_seconds.json, one cold ``benchmarks/pipeline_speed.py --side pipeline`` run,
where it was measured is written in it). Nothing runs and nothing is written.

    python benchmarks/rerun_cost.py [--seconds FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.import_graph import (  # noqa: E402
    PACKAGE,
    dependency_path,
    module_file,
    project_modules,
    reached,
)


def expanded_stages() -> dict[str, tuple[str, str | None, set[str]]]:
    """Each DVC stage (``train@cnn``...): its entry module, its foreach key, its deps."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    found = {}
    for name, stage in spec.items():
        body = stage.get("do", stage)
        entry = body["cmd"].split()[2]
        for key in list(params["models"]) if "do" in stage else [None]:
            deps = {d.replace("${key}", key) if key else d for d in body["deps"]}
            found[f"{name}@{key}" if key else name] = (entry, key, deps)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=Path, default=ROOT / "benchmarks/stage_seconds.json")
    args = parser.parse_args()
    seconds = json.loads(args.seconds.read_text(encoding="utf-8"))["seconds"]
    stages = expanded_stages()
    closures = {s: reached(entry, key) for s, (entry, key, _) in stages.items()}
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0])
    print(f"{'module':<44} {'stages rerun: sub-package / module':>36}  {'seconds':>15}")
    for module in project_modules(PACKAGE):
        if not module_file(module).read_text(encoding="utf-8").strip():
            continue  # an empty package __init__.py: nothing to edit
        dep = dependency_path(module)
        coarse = [s for s, (_, _, deps) in stages.items() if dep in deps]
        fine = [s for s, closure in closures.items() if module in closure]
        cost = (sum(seconds[s] for s in coarse), sum(seconds[s] for s in fine))
        print(
            f"{module:<44} {len(coarse):>17} / {len(fine):<17}  {cost[0]:>6.0f} / {cost[1]:<6.0f}"
        )
        row = totals["/".join(module.split(".")[:2])]
        row[0] += len(coarse)
        row[1] += len(fine)
        row[2] += cost[0]
        row[3] += cost[1]
    print(
        "\nAn edit in each module of a sub-package, summed (stages, seconds: sub-package / module):"
    )
    coarse_total = fine_total = 0.0
    for dep, (nc, nf, sc, sf) in sorted(totals.items()):
        coarse_total += sc
        fine_total += sf
        print(
            f"  {dep:<42} {nc:>4.0f} / {nf:<4.0f} {sc:>7.0f} / {sf:<7.0f} s  {sc / max(sf, 1):.2f}x"
        )
    print(f"all modules: {coarse_total:.0f} / {fine_total:.0f} s, {coarse_total / fine_total:.2f}x")


if __name__ == "__main__":
    main()
