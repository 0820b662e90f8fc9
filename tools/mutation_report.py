"""`make mutation`: mutmut's verdicts on fargate_app, triaged, into docs/mutation.json and docs/reliability.md.

    python tools/mutation_report.py             # after tools/mutation_run.py (every module, or some)
    python tools/mutation_report.py --alone     # also run every e2e and reliability test file by itself

The figure is kept per module: a run's verdicts replace those of the modules it judged completely, each stamped with
the digest of the source it mutated (``sources``) and the commit; the other modules keep theirs. A module whose
source has changed since is *stale* (tools/reliability_report.py counts its mutants as not judged), and
``tools/mutation_run.py --stale`` runs exactly those, so the figure is brought up to date a few modules at a time
rather than in one run of hours.

Surviving mutants are matched against tools/mutation_triage.json: ``equivalent`` gives why a mutant cannot change
behaviour (left out of the score); ``killed_by_new_tests`` records the survivors of an earlier run and the tests
added to kill them (listed in the report; they must not survive again).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import reliability_report

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutation"  # tools/mutation_run.py's scratch copy, where mutmut keeps its results
MUTMUT = Path(sys.executable).with_name("mutmut")
TRIAGE = ROOT / "tools" / "mutation_triage.json"
RESULTS = ROOT / "docs" / "mutation.json"
REPORT = ROOT / "docs" / "reliability.md"
ALONE_DIRS = ("tests/e2e", "tests/reliability")
RESULT_LINE = re.compile(r"^\s+(?P<name>\S+): (?P<status>.+)$")
HUNK = re.compile(r"^@@ -(?P<line>\d+)")
PACKAGE = "layers/core/fargate_app"
KILLED = ("killed", "timeout", "caught by type check")
SURVIVED = ("survived", "suspicious")


def mutmut(*args: str) -> str:
    return subprocess.run(
        [str(MUTMUT), *args], cwd=WORK, capture_output=True, text=True, check=True, timeout=600
    ).stdout


def statuses() -> dict[str, str]:
    found = {}
    for line in mutmut("results", "--all", "true").splitlines():
        match = RESULT_LINE.match(line)
        if match:
            found[match["name"]] = match["status"].strip()
    return found


def describer() -> Callable[[str], dict[str, str]]:
    """Where a mutant is (file:line) and its change (``old`` → ``new``), from the diff ``mutmut show`` prints, made
    in this process: one ``mutmut show`` per survivor would start mutmut thousands of times."""
    os.chdir(WORK)  # mutmut reads its settings (pyproject.toml) from the current directory, at import
    from mutmut.__main__ import get_diff_for_mutant, walk_mutatable_files  # mutmut reads the scratch copy's settings
    from mutmut.configuration import Config
    from mutmut.mutation.data import SourceFileMutationData

    Config.ensure_loaded()
    paths = {}
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        paths.update(dict.fromkeys(data.exit_code_by_key, path))

    def describe(name: str) -> dict[str, str]:
        path = paths[name]
        diff = get_diff_for_mutant(name, path=path).splitlines()
        start = next((int(m["line"]) for line in diff if (m := HUNK.match(line))), 1)
        body = [line for line in diff if line[:1] in " -+" and not line.startswith(("---", "+++"))]
        offset = next((i for i, line in enumerate(body) if line.startswith("-")), 0)
        old = " / ".join(line[1:].strip() for line in body if line.startswith("-"))
        new = " / ".join(line[1:].strip() for line in body if line.startswith("+"))
        relative = Path(path).as_posix().replace("src/fargate_app/", f"{PACKAGE}/", 1)  # where the repository has it
        return {
            "where": f"{relative}:{function_line(ROOT / relative, name) + start - 1 + offset}",
            "change": f"`{old}` → `{new}`",
            "old": old,
        }

    return describe


def function_line(source: Path, mutant: str) -> int:
    """The line of the mutated function's ``def`` (mutmut's diffs count lines from it). The mutant's name ends in
    ``x_<function>__mutmut_<n>`` or, for a method, ``xǁ<Class>ǁ<method>__mutmut_<n>``."""
    mangled = mutant.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[-1]
    owner, function = mangled.split("ǁ")[1:] if "ǁ" in mangled else ("", mangled.removeprefix("x_"))
    lines = source.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if owner and line.startswith(f"class {owner}")), 0)
    definition = re.compile(rf"\s*(async )?def {re.escape(function)}\(")
    return next((i + 1 for i in range(start, len(lines)) if definition.match(lines[i])), 1)


def call_head(where: str) -> str:
    """The first line of the call a mutated line (``path:line``) is an argument line of, or "": ``logger.info(`` for
    ``"cache rule ready", extra={...}`` written on the lines below it."""
    path, line = where.rsplit(":", 1)
    lines = (ROOT / path).read_text().splitlines()
    index = int(line) - 1
    indent = len(lines[index]) - len(lines[index].lstrip())
    for above in reversed(lines[max(0, index - 12) : index]):
        depth = len(above) - len(above.lstrip())
        if not above.strip() or depth >= indent:
            continue
        if above.rstrip().endswith("("):
            return above.strip()
        if not above.rstrip().endswith(("{", "[")):  # not inside a call's bracketed argument either
            return ""
        indent = depth
    return ""


def merge(previous: dict[str, Any] | None, fresh: dict[str, Any]) -> dict[str, Any]:
    """``previous`` with the verdicts of every module ``fresh`` judged completely (it covered the module's source and
    left none of its mutants "not checked") in place of its own; a module ``fresh`` left incomplete keeps its earlier
    verdicts (or none). A module without mutants is judged by being covered."""
    previous = previous or {}
    complete = {module for module in fresh["sources"] if not fresh["modules"].get(module, {}).get("not checked")}

    def combined(key: str) -> list[Any]:
        """Mutant entries of ``key``: the fresh run's for the modules it completed, the earlier ones for the rest."""
        kept = [
            entry for entry in previous.get(key, []) if reliability_report.module_of(_entry_name(entry)) not in complete
        ]
        new = [entry for entry in fresh[key] if reliability_report.module_of(_entry_name(entry)) in complete]
        return sorted(kept + new, key=_entry_name)

    modules = {m: c for m, c in previous.get("modules", {}).items() if m not in complete}
    modules.update({m: fresh["modules"][m] for m in complete if m in fresh["modules"]})
    counts: dict[str, int] = {}
    for per_module in modules.values():
        for status, count in per_module.items():
            counts[status] = counts.get(status, 0) + count
    stamp = {"commit": fresh["commit"], "mutmut": fresh["mutmut"]}
    return {
        **stamp,
        "killed": sum(counts.get(status, 0) for status in KILLED),
        "untested": counts.get("no tests", 0),
        "counts": counts,
        "modules": dict(sorted(modules.items())),
        "sources": {
            **{m: d for m, d in previous.get("sources", {}).items() if m not in complete},
            **{m: fresh["sources"][m] for m in complete},
        },
        "measured_at": {
            **{m: c for m, c in previous.get("measured_at", {}).items() if m not in complete},
            **dict.fromkeys(complete, fresh["commit"]),
        },
        "survivors": combined("survivors"),
        "untested_mutants": combined("untested_mutants"),
        "killed_by_new_tests": combined("killed_by_new_tests"),
        # survivors a later run of today's tests killed (rejudge): a complete run of their module supersedes them
        "rejudged": {
            n: c for n, c in previous.get("rejudged", {}).items() if reliability_report.module_of(n) not in complete
        },
    }


def rejudge(measured: dict[str, Any], found: dict[str, str], mutated: dict[str, str], commit: str) -> dict[str, Any]:
    """``measured`` after a run that judged some of its survivors again (tools/mutation_run.py --survivors; ``found``:
    their statuses, ``mutated``: the digest of each module's source that run mutated): those now killed leave the
    survivors and count as killed in their module; those that survived again, or whose module's source is not the one
    its verdicts are of (the same source gives the same mutants), stay as they were."""
    sources = measured.get("sources", {})
    recorded = {m["name"]: m["status"] for m in measured["survivors"]}
    killed = {
        name
        for name, status in found.items()
        if status in KILLED
        and name in recorded
        and sources.get(module := reliability_report.module_of(name)) == mutated.get(module)
    }
    modules = {module: dict(counts) for module, counts in measured["modules"].items()}
    for name in killed:
        per_module = modules[reliability_report.module_of(name)]
        per_module[recorded[name]] -= 1
        per_module[found[name]] = per_module.get(found[name], 0) + 1
    modules = {module: {s: c for s, c in per.items() if c} for module, per in modules.items()}
    counts: dict[str, int] = {}
    for per_module in modules.values():
        for status, count in per_module.items():
            counts[status] = counts.get(status, 0) + count
    return {
        **measured,
        "killed": sum(counts.get(status, 0) for status in KILLED),
        "counts": counts,
        "modules": modules,
        "survivors": [m for m in measured["survivors"] if m["name"] not in killed],
        "rejudged": dict(sorted({**measured.get("rejudged", {}), **dict.fromkeys(killed, commit)}.items())),
    }


def rejudged_run() -> tuple[dict[str, str], dict[str, str], str]:
    """The statuses of the mutants a --survivors run judged, the digests of the sources it mutated, its commit."""
    found = statuses()
    judged = (WORK / "judged").read_text().split()
    mutated = WORK / "src" / "fargate_app"
    digests = {
        reliability_report.module_name(path, mutated): reliability_report.source_digest(path)
        for path in mutated.rglob("*.py")
    }
    return {name: found[name] for name in judged if name in found}, digests, (WORK / "commit").read_text().strip()


def retriage(survivors: list[dict[str, Any]], triage: dict[str, Any]) -> None:
    """Apply today's one-by-one triage to every recorded survivor, not only those of the latest run: an equivalent
    named (or withdrawn) since counts at once. Rule-matched entries keep their rule."""
    equivalent = triage.get("equivalent", {})
    for mutant in survivors:
        if mutant["name"] in equivalent:
            mutant["equivalent"], mutant["by_rule"] = equivalent[mutant["name"]], False
        elif not mutant.get("by_rule"):
            mutant["equivalent"] = ""


def _entry_name(entry: dict[str, Any] | str) -> str:
    return entry if isinstance(entry, str) else str(entry["name"])


def mutation_results(triage: dict[str, Any]) -> dict[str, Any]:
    found = statuses()
    counts: dict[str, int] = {}
    modules: dict[str, dict[str, int]] = {}
    for name, status in found.items():
        counts[status] = counts.get(status, 0) + 1
        per_module = modules.setdefault(reliability_report.module_of(name), {})
        per_module[status] = per_module.get(status, 0) + 1
    describe = describer()
    equivalent = triage.get("equivalent", {})
    # Rules for whole kinds of equivalent mutants, matched against the mutated (original) line.
    rules = [(re.compile(rule["changed_line"]), rule["reason"]) for rule in triage.get("rules", [])]
    survivors = []
    for name in sorted(n for n, status in found.items() if status in SURVIVED):
        where = describe(name)
        said = (where["old"], call_head(where["where"]))  # a log call's argument lines are the call's too
        by_rule = next((why for line, why in rules if any(line.search(text) for text in said)), "")
        reason = equivalent.get(name) or by_rule
        survivors.append(
            {"name": name, **where, "equivalent": reason, "by_rule": reason == by_rule != "", "status": found[name]}
        )
    killed_again = [
        {"name": name, **entry}
        for name, entry in triage.get("killed_by_new_tests", {}).items()
        if found.get(name) not in SURVIVED
    ]
    # The run's own record of what it measured (tools/mutation_run.py), not what HEAD is now: a run takes long.
    commit = (WORK / "commit").read_text() if (WORK / "commit").is_file() else "unknown"
    mutated = WORK / "src" / "fargate_app"  # the copy mutmut mutated: its digests say what was measured
    listed = (WORK / "modules").read_text().split() if (WORK / "modules").is_file() else []
    judged = [mutated / name for name in listed] or sorted(mutated.rglob("*.py"))  # modules without mutants too
    return {
        "sources": {
            reliability_report.module_name(path, mutated): reliability_report.source_digest(path) for path in judged
        },
        "commit": commit.strip(),
        "mutmut": metadata.version("mutmut"),
        "killed": sum(counts.get(status, 0) for status in KILLED),
        "untested": counts.get("no tests", 0),
        "counts": counts,
        "modules": {module: modules[module] for module in sorted(modules)},
        "survivors": survivors,
        "untested_mutants": sorted(n for n, status in found.items() if status == "no tests"),
        "killed_by_new_tests": killed_again,
    }


def files_alone() -> dict[str, bool]:
    """Each e2e and reliability test file run by itself, in its own pytest process (a clean sandbox each)."""
    passed = {}
    for directory in ALONE_DIRS:
        for path in sorted((ROOT / directory).glob("test_*.py")):
            started = time.monotonic()
            answer = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", str(path.relative_to(ROOT))],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            relative = str(path.relative_to(ROOT))
            passed[relative] = answer.returncode == 0
            tail = answer.stdout.strip().splitlines()[-1:] or ["(no output)"]
            print(
                f"  {relative}: {'passed' if passed[relative] else 'FAILED'} in {time.monotonic() - started:.0f} s; {tail[0]}"
            )
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--alone", action="store_true", help="also run each e2e/reliability test file by itself")
    args = parser.parse_args(argv)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    triage = json.loads(TRIAGE.read_text())
    scope = (WORK / "scope").read_text() if (WORK / "scope").is_file() else ""
    measured = previous.get("mutation")
    if scope in ("full", "modules"):  # a sample's verdicts are `make test`'s, not the figure's
        measured = merge(measured, mutation_results(triage))
    elif scope == "survivors" and measured:
        measured = rejudge(measured, *rejudged_run())
    if measured:
        retriage(measured["survivors"], triage)
    results = {"mutation": measured, "alone": files_alone() if args.alone else previous.get("alone")}
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    REPORT.write_text(
        reliability_report.patch_mutation(REPORT.read_text(), results["mutation"], results["alone"] or {})
    )
    figures = reliability_report.mutation_figures(results["mutation"])
    print(f"mutation score: {figures['measured']}; wrote {RESULTS.relative_to(ROOT)} and {REPORT.relative_to(ROOT)}")
    stale = set(reliability_report.stale_modules(results["mutation"]))
    open_survivors = [
        m["name"]
        for m in (results["mutation"] or {}).get("survivors", [])
        if not m["equivalent"] and reliability_report.module_of(m["name"]) not in stale
    ]
    if open_survivors:
        print(f"{len(open_survivors)} surviving mutants are not triaged (mutmut show <name>), for example:")
        print("\n".join(f"  {name}" for name in open_survivors[:20]))
    alone_ok = all((results["alone"] or {}).values())
    return 0 if figures["met"] and alone_ok else 1


if __name__ == "__main__":
    sys.exit(main())
