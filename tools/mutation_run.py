"""mutmut over fargate_app, in a scratch copy of the repository laid out the way mutmut expects.

    python tools/mutation_run.py                  # every module (then tools/mutation_report.py)
    python tools/mutation_run.py --stale          # `make mutation`: the modules changed since their verdicts
    python tools/mutation_run.py --module kube/usage.py registry/client.py   # these modules
    python tools/mutation_run.py --sample         # `make test`: a fixed sample whose mutants must all be killed
    python tools/mutation_run.py --again          # after adding tests: judge the last run's live mutants again
    python tools/mutation_run.py --survivors      # after adding tests: judge every recorded, untriaged survivor again

Why mutmut (3.x) rather than cosmic-ray or pytest-gremlins: it forks after the test session has imported everything
and runs, per mutant, only the tests that called the mutated function (recorded in one traced run), fastest first,
stopping at the first failure; cosmic-ray runs the whole test command once per mutant (thousands of mutants × minutes
here), and pytest-gremlins is young and little used. mutmut is pinned below 3.8, which needs click>=8.4 where
aws-sam-cli pins click==8.1.8.

mutmut names a mutant after its file's path (``src/`` stripped) and reads its settings from ./pyproject.toml. The
package lives in its Lambda layer (``layers/core/fargate_app``), so the run happens in ``.mutation/``: the working
tree (what is being tested, committed or not) with the package at ``src/fargate_app``, pytest's ``pythonpath``
pointed there, and a ``[tool.mutmut]`` section written here. mutmut's own copy (``.mutation/mutants``) keeps the
results for ``mutmut results`` / ``mutmut show`` (run them in ``.mutation/``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import reliability_report

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutation"  # the full run's copy: tools/mutation_report.py reads its results
SAMPLE_WORK = ROOT / ".mutation-sample"  # the sample's own, so `make test` leaves the full run's results alone
MUTMUT = Path(sys.executable).with_name("mutmut")
TRIAGE = ROOT / "tools" / "mutation_triage.json"
RESULTS = ROOT / "docs" / "mutation.json"  # the recorded verdicts (tools/mutation_report.py)
PACKAGE = "layers/core/fargate_app"
SKIP = {
    ".git",
    ".venv",
    ".mutation",
    ".mutation-sample",
    "mutants",
    "node_modules",
    ".aws-sam",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
}
REFRESHED = ["tests", "sandbox", "tools", "fargate_app_cli", "functions", "statemachine", "template.yaml", "examples"]
ALL_TESTS = ["tests/unit", "tests/integration"]
# Left out of every run: the layer-pruning and packaging tests import the package or pip-install the project in a
# clean interpreter without mutmut, the architecture test reads the package where the repository keeps it
# (layers/core, not src/), the layer Makefiles' test needs the symbolic link mutmut's copy does not keep, and
# asl-validator is not installed in the scratch copy; they check the build, the layout and the ASL, not
# fargate_app's behaviour.
PYTEST_ARGS = [
    "-p",
    "no:xdist",
    "-q",
    "--ignore=tests/unit/test_kube_layer_prune.py",
    "--ignore=tests/unit/test_architecture.py",
    "--ignore=tests/unit/test_cli_package.py",
    "--ignore=tests/unit/test_layer_makefiles.py",
    "-k",
    "not asl_validator",
]
# `make test`'s sample: the modules whose tests once let mutants live (what keeps a Fargate profile, compensation) and
# the fast tests that guard them with the real collaborators (moto, the Kubernetes emulator).
SAMPLE = {
    "kube/usage.py": [
        "tests/integration/kube/test_kube_profile_users.py",
        "tests/integration/kube/test_kube_release_emulated.py",
    ],
}
RESULT_LINE = re.compile(r"^\s+(?P<name>\S+): (?P<status>.+)$")
KILLED = ("killed", "timeout", "caught by type check")


def prepare(sample: bool, modules: list[str] | None = None, scope: str = "") -> None:
    """``.mutation/``: the working tree, the package at src/fargate_app, and the run's settings."""
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for entry in ROOT.iterdir():
        if entry.name in SKIP:
            continue
        if entry.is_dir():
            shutil.copytree(entry, WORK / entry.name, ignore=ignore, symlinks=True)
        else:
            shutil.copy2(entry, WORK / entry.name)
    shutil.copytree(ROOT / PACKAGE, WORK / "src" / "fargate_app", ignore=ignore)
    shutil.rmtree(WORK / PACKAGE)  # one copy of the package, or a test could import the unmutated one
    pyproject = (WORK / "pyproject.toml").read_text()
    pyproject = pyproject.replace('pythonpath = ["layers/core",', 'pythonpath = ["src",')
    tests = sorted({t for paths in SAMPLE.values() for t in paths}) if sample else ALL_TESTS
    settings = {
        "source_paths": ["src/fargate_app"],
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": PYTEST_ARGS,
        "also_copy": [
            "fargate_app_cli",
            "sandbox",
            "tools",
            "functions",
            "statemachine",
            "template.yaml",
            "examples",
            "docs",
            "layers",
        ],
    }
    only = list(SAMPLE) if sample else modules
    if only:
        settings["only_mutate"] = [f"src/fargate_app/{module}" for module in only]
    # tools/mutation_report.py records the verdicts of a full or a modules run, never a sample's
    (WORK / "scope").write_text(scope or ("sample" if sample else "modules" if modules else "full"))
    (WORK / "modules").write_text("\n".join(only or []))  # which modules this run judges ("" for all)
    (WORK / "commit").write_text(tree_version())  # what the verdicts are of: the tests and package as they are now
    section = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
    (WORK / "pyproject.toml").write_text(f"{pyproject.rstrip()}\n\n[tool.mutmut]\n{section}\n")


def tree_version() -> str:
    """The commit the working tree is at, ``+changes`` when it differs from it (what a run measures)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain") else "")


def mutmut(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MUTMUT), *args], cwd=WORK, capture_output=True, text=True, check=check)


def statuses() -> dict[str, str]:
    listed = mutmut("results", "--all", "true").stdout
    return {m["name"]: m["status"].strip() for line in listed.splitlines() if (m := RESULT_LINE.match(line))}


def run(sample: bool, modules: list[str] | None = None) -> int:
    started = time.monotonic()
    prepare(sample, modules)
    return judge(sample, mutmut_run([]), started)


def stale() -> list[str]:
    """The package's modules (paths under fargate_app) to measure: no recorded verdicts, verdicts for another
    source, or a run that stopped before judging all of their mutants."""
    measured = json.loads(RESULTS.read_text()).get("mutation") if RESULTS.exists() else None
    package = ROOT / PACKAGE
    paths = module_paths(package)
    unfinished = {m for m, counts in (measured or {}).get("modules", {}).items() if counts.get("not checked")}
    wanted = set(reliability_report.stale_modules(measured, package)) | unfinished
    return sorted(paths[module] for module in wanted if module in paths)


def module_paths(package: Path) -> dict[str, str]:
    """``{"fargate_app.kube.usage": "kube/usage.py"}`` for every module of ``package``."""
    return {
        reliability_report.module_name(p, package): p.relative_to(package).as_posix() for p in package.rglob("*.py")
    }


def mutmut_run(names: list[str]) -> subprocess.CompletedProcess[str]:
    # Most tests that call the package wait on a server (the Kubernetes emulator, a registry), not on the CPU:
    # more children than cores keep the cores busy.
    children = str(max(2, 2 * (os.cpu_count() or 1)))
    return subprocess.run(
        [str(MUTMUT), "run", "--max-children", children, *names], cwd=WORK, capture_output=True, text=True, check=False
    )


def again() -> int:
    """Judge again, against the tests as they are now, the mutants the last full run left alive or found no test
    for: only the tests change, so the package must be the one that run mutated (else a full run is needed)."""
    started = time.monotonic()
    changed = package_changes()
    if changed:
        print(f"the package changed since the last run ({', '.join(changed[:5])}): run `make mutation` in full")
        return 1
    # Everything the tests use but the package: the tests, and the emulators and tools they run against.
    for name in REFRESHED:
        for copy in (WORK / name, WORK / "mutants" / name):
            if (ROOT / name).is_dir():
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(ROOT / name, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(ROOT / name, copy)
    alive = [name for name, status in statuses().items() if status not in KILLED]
    if (WORK / "judged").is_file():  # after --survivors: its mutants only, not the ones it left "not checked"
        alive = [name for name in alive if name in (WORK / "judged").read_text().split()]
    print(f"judging {len(alive)} mutants again")
    return judge(False, mutmut_run(alive), started)


def survivors() -> int:
    """Judge again, against the tests as they are now, every surviving mutant docs/mutation.json lists without a
    triage, in the modules whose source is still the one measured (the same source gives mutmut the same mutants under
    the same names). tools/mutation_report.py then moves those now killed out of the survivors; the module's other
    verdicts stand, as its source did not change."""
    started = time.monotonic()
    measured = json.loads(RESULTS.read_text()).get("mutation") if RESULTS.exists() else None
    package = ROOT / PACKAGE
    stale = set(reliability_report.stale_modules(measured, package))
    names = sorted(
        m["name"]
        for m in (measured or {}).get("survivors", [])
        if not m["equivalent"] and reliability_report.module_of(m["name"]) not in stale
    )
    if not names:
        print("no untriaged survivor in a module measured as it is: nothing to judge again")
        return 0
    paths = module_paths(package)
    modules = sorted({paths[reliability_report.module_of(name)] for name in names})
    prepare(False, modules, scope="survivors")
    (WORK / "judged").write_text("\n".join(names))  # the mutants this run judges, for tools/mutation_report.py
    print(f"judging {len(names)} survivors of {len(modules)} modules again")
    return judge(False, mutmut_run(names), started)


def package_changes() -> list[str]:
    """Files of the package that differ from the copy the last run mutated (``.mutation/src``)."""
    mutated = WORK / "src" / "fargate_app"
    if not mutated.is_dir():
        return ["no earlier run"]
    ours = {p.relative_to(ROOT / PACKAGE): p for p in (ROOT / PACKAGE).rglob("*.py")}
    theirs = {p.relative_to(mutated): p for p in mutated.rglob("*.py")}
    return sorted(
        str(name)
        for name in ours.keys() | theirs.keys()
        if name not in ours or name not in theirs or ours[name].read_bytes() != theirs[name].read_bytes()
    )


def judge(sample: bool, answer: subprocess.CompletedProcess[str], started: float) -> int:
    found = statuses() if answer.returncode == 0 else {}
    if not found:
        print(answer.stdout[-4000:], answer.stderr[-4000:], sep="\n")
        print(f"mutmut run failed ({answer.returncode}) or found no mutants")
        return 1
    if (WORK / "judged").is_file():  # a run of some mutants only: the others are "not checked"
        found = {name: found[name] for name in (WORK / "judged").read_text().split() if name in found}
    equivalent = json.loads(TRIAGE.read_text()).get("equivalent", {})
    killed = [name for name, status in found.items() if status in KILLED]
    survivors = [name for name, status in found.items() if status not in KILLED and name not in equivalent]
    listed = (WORK / "modules").read_text().split() if (WORK / "modules").is_file() else []
    scope = ", ".join(listed) or "fargate_app"
    print(
        f"mutation run ({scope}): {len(killed)} of {len(found)} mutants killed, {len(survivors)} not "
        f"(untriaged), in {time.monotonic() - started:.0f} s"
    )
    if sample:
        for name in survivors:
            print(f"{name}: {found[name]}\n{mutmut('show', name, check=False).stdout}")
        return 1 if survivors else 0
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sample", action="store_true", help="only the fixed sample; fail on any surviving mutant")
    parser.add_argument("--again", action="store_true", help="judge the last run's live mutants with today's tests")
    parser.add_argument("--survivors", action="store_true", help="judge the recorded untriaged survivors again")
    parser.add_argument("--module", nargs="+", help="only these modules (paths under fargate_app: kube/usage.py)")
    parser.add_argument("--stale", action="store_true", help="only the modules changed since their recorded verdicts")
    args = parser.parse_args(argv)
    if args.sample:
        global WORK
        WORK = SAMPLE_WORK
    if args.again:
        return again()
    if args.survivors:
        return survivors()
    modules = stale() if args.stale else args.module
    if args.stale and not modules:
        print("every module's verdicts are for its current source: nothing to run")
        return 0
    unknown = [module for module in modules or [] if not (ROOT / PACKAGE / module).is_file()]
    if unknown:
        parser.error(f"not a module of {PACKAGE}: {', '.join(unknown)}")
    return run(args.sample, modules)


if __name__ == "__main__":
    sys.exit(main())
