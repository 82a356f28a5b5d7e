"""Mutation testing of segclr's core modules with mutmut, one module at a time (`make mutation`).

A benchmark-style command, not part of CI. For each module of ``[tool.segclr.mutation.*]`` in
pyproject.toml it

1. snapshots ``src/``, ``tests/``, ``configs/``, the module's ``copy`` folders and ``pyproject.toml``
   into ``build/mutation/<module>/`` (the checkout itself is never mutated, so it can keep changing),
2. writes a ``[tool.mutmut]`` section there that mutates only the module's files and runs only its
   test files, with the module's ``pytest_args`` (mutmut then runs, for each mutant, only the tests
   that call the mutated function),
3. runs ``mutmut run`` with one torch/OpenMP thread per worker, and
4. reads back every mutant's verdict; the score is killed / (killed + survived + timeout + other).

Results: ``build/mutation/results.json`` (all modules measured so far, merged) and
``build/mutation/summary.md`` (a table, then each survivor's diff, for docs/testing.md).

    python benchmarks/mutation.py                 # every module, 2 workers
    python benchmarks/mutation.py metrics pairs   # some modules
    python benchmarks/mutation.py --jobs 1 --list

mutmut mutates only function bodies, and not functions with decorators other than
staticmethod/classmethod (``@property``, ``@contextlib.contextmanager``, ``@torch.no_grad()``).
Code run only in subprocesses (the DDP tests' workers) cannot be associated with tests either.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "mutation"
SEP = "ǁ"  # mutmut's class/method separator in mutant names
THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def load_modules() -> dict[str, dict]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data["tool"]["segclr"]["mutation"]


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def _patterns(spec: dict) -> list[str]:
    """mutmut mutant-name globs for the functions in ``only`` (empty: every mutant)."""
    pats = []
    for name in spec.get("only", []):
        if "." in name:
            cls, meth = name.split(".", 1)
            pats.append(f"*.x{SEP}{cls}{SEP}{meth}__mutmut_*")
        else:
            pats.append(f"*.x_{name}__mutmut_*")
    return pats


def prepare(name: str, spec: dict) -> tuple[Path, list[str]]:
    work = OUT / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    extra = spec.get("copy", [])  # data a module's tests read besides configs/ (e.g. committed cells)
    for d in ("src", "tests", "configs", *extra):
        shutil.copytree(ROOT / d, work / d, ignore=ignore)
    tests = sorted({t for pattern in spec["tests"] for t in glob.glob(pattern, root_dir=ROOT)})
    missing = [p for p in spec["tests"] if not glob.glob(p, root_dir=ROOT)]
    if missing:
        print(f"[{name}] test files not found (skipped): {', '.join(missing)}", flush=True)
    if not tests:
        return work, []
    pyproject = (ROOT / "pyproject.toml").read_text()
    pyproject += f"""
[tool.mutmut]
source_paths = ["src"]
only_mutate = {_toml_list(spec["mutate"])}
also_copy = {_toml_list(["configs", *extra])}
pytest_add_cli_args = {_toml_list(["-p", "no:cacheprovider", "-q", *spec.get("pytest_args", [])])}
pytest_add_cli_args_test_selection = {_toml_list(tests)}
use_git_change_detection = false
"""
    (work / "pyproject.toml").write_text(pyproject)
    return work, tests


def read_verdicts(work: Path, spec: dict) -> dict[str, tuple[str, str]]:
    """mutant name -> (verdict, source file), for the mutants this module scores."""
    from mutmut.stats import status_by_exit_code

    pats = _patterns(spec)
    verdicts = {}
    for path in spec["mutate"]:
        meta = work / "mutants" / (path + ".meta")
        if not meta.is_file():
            continue
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        for key, code in codes.items():
            if pats and not any(fnmatch.fnmatch(key, p) for p in pats):
                continue
            verdicts[key] = (status_by_exit_code[code], path)
    return verdicts


def diffs(work: Path, mutants: dict[str, str]) -> dict[str, str]:
    """The -/+ lines of each mutant (mutmut's own diff, computed in this process)."""
    from mutmut.configuration import reset_config
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.utils.file_utils import change_cwd

    out = {}
    with change_cwd(work):
        reset_config()
        for name, path in mutants.items():
            try:
                text = get_diff_for_mutant(name, path=path)
            except Exception as err:  # noqa: BLE001 - a missing diff must not lose the scores
                text = f"(no diff: {err})"
            out[name] = "\n".join(ln for ln in text.splitlines()
                                  if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---")))
    return out


def run_module(name: str, spec: dict, jobs: int, timeout: float | None) -> dict:
    work, tests = prepare(name, spec)
    if not tests:
        print(f"[{name}] skipped: none of its test files exist", flush=True)
        return {"module": name, "files": spec["mutate"], "tests": [], "only": spec.get("only", []),
                "command": "", "mutmut_exit": "skipped (no test files)", "wall_s": 0, "cpu_s": 0, "counts": {},
                "killed": 0, "scored": 0, "score": None, "not_killed": {}, "source_sha1": {}}
    mutmut = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or "mutmut"
    cmd = [mutmut, "run", "--max-children", str(jobs), *_patterns(spec)]
    env = {**os.environ, **THREAD_ENV, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    print(f"[{name}] {' '.join(cmd)}  (in {work.relative_to(ROOT)}; tests: {' '.join(tests)})", flush=True)
    start, cpu0 = time.perf_counter(), os.times()
    log = (work / "mutmut.log").open("w")
    try:
        rc = subprocess.run(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        rc = "timeout"
    log.close()
    wall, cpu1 = time.perf_counter() - start, os.times()
    cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
    found = read_verdicts(work, spec)
    verdicts = {k: v for k, (v, _) in found.items()}
    counts: dict[str, int] = {}
    for v in verdicts.values():
        counts[v] = counts.get(v, 0) + 1
    scored = sum(n for v, n in counts.items() if v not in ("no tests", "not checked", "skipped"))
    killed = counts.get("killed", 0) + counts.get("caught by type check", 0)
    survivors = sorted(k for k, v in verdicts.items() if v not in ("killed", "caught by type check"))
    diff_of = diffs(work, {k: found[k][1] for k in survivors})
    result = {
        "module": name, "files": spec["mutate"], "tests": tests, "only": spec.get("only", []),
        "command": " ".join(cmd), "mutmut_exit": rc, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
        "counts": counts, "killed": killed, "scored": scored,
        "score": round(100.0 * killed / scored, 1) if scored else None,
        "not_killed": {k: {"status": verdicts[k], "diff": diff_of[k]} for k in survivors},
        "source_sha1": {p: _sha1(work / p) for p in spec["mutate"]},
    }
    print(f"[{name}] {killed}/{scored} killed ({result['score']}%), {counts}, {wall:.0f} s wall, "
          f"{cpu:.0f} s CPU, mutmut exit {rc}", flush=True)
    return result


def _sha1(path: Path) -> str:
    import hashlib

    return hashlib.sha1(path.read_bytes()).hexdigest()[:12]


def write_summary(results: dict[str, dict]) -> None:
    lines = ["| module | files | killed / scored | score | no tests | wall s | CPU s |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        files = ", ".join(Path(f).name for f in r["files"])
        if r["only"]:
            files += " (" + ", ".join(r["only"]) + ")"
        lines.append(f"| {name} | {files} | {r['killed']} / {r['scored']} | {r['score']} % | "
                     f"{r['counts'].get('no tests', 0)} | {r['wall_s']} | {r['cpu_s']} |")
    lines += ["", f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}, "
                  f"git {_git_state()}", ""]
    for name, r in results.items():
        if r["not_killed"]:
            lines.append(f"## {name}: not killed")
            for k, v in r["not_killed"].items():
                lines += [f"### {k} ({v['status']})", "```diff", v["diff"], "```"]
    (OUT / "summary.md").write_text("\n".join(lines) + "\n")


def _git_state() -> str:
    out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() or "?"


def main(argv: list[str] | None = None) -> int:
    modules = load_modules()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", help=f"modules to run (default: all of {', '.join(modules)})")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("MUTATION_JOBS", "2")), help="mutmut workers")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per module before giving up")
    ap.add_argument("--list", action="store_true", help="print the modules and exit")
    args = ap.parse_args(argv)
    if args.list:
        for name, spec in modules.items():
            print(f"{name}: {' '.join(spec['mutate'])}  <- {' '.join(spec['tests'])}")
        return 0
    unknown = [m for m in args.modules if m not in modules]
    if unknown:
        ap.error(f"unknown module(s) {unknown}; known: {', '.join(modules)}")
    OUT.mkdir(parents=True, exist_ok=True)
    results_path = OUT / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for name in args.modules or list(modules):
        results[name] = run_module(name, modules[name], args.jobs, args.timeout)
        results_path.write_text(json.dumps(results, indent=1))
        write_summary(results)
    print(f"results: {results_path.relative_to(ROOT)}, {(OUT / 'summary.md').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
