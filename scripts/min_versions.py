"""Does bayesln pass its fast tests with every dependency at its declared lower bound?

Builds a fresh virtual environment (``python3.11 -m venv``) under ``--out``, installs every
dependency of ``pyproject.toml`` ([project] dependencies and the ``test`` extra) pinned to
its floor - ``name==X`` for ``name>=X`` - in one ``pip install`` (so that a later install
cannot upgrade an earlier pin), installs bayesln itself with ``--no-deps``, and runs the
fast tests::

    python -m pytest -m "not slow" -q -x -p no:cacheprovider

in the source folder with the venv's Python. Exit code 0 when the install and the tests
pass, 1 otherwise. Not part of ``.ci/run`` (it takes 5-10 minutes: the downloads, and
the tests at the old versions).

The exact command (what CI would run, from the repository root; nothing is written into
the repository unless ``--record`` is given):

    python3.11 scripts/min_versions.py --out /tmp/bayesln-min-versions

Trying an older floor than the one declared (the measurements of
``benchmarks/results/min_versions.json`` were made this way; ``--set`` is repeatable and
also accepts a package that is not declared, e.g. a transitive one)::

    python3.11 scripts/min_versions.py --out /tmp/mv --set numpy==2.1.0 --set pandas==2.2.3 \\
        --record benchmarks/results/min_versions.json --label "numpy 2.1, pandas 2.2"

``--record FILE`` appends the trial (pins asked for, versions pip installed, ``pip check``,
the pytest summary and first failure, durations) to FILE, with the machine description.
``--source DIR`` tests another copy of the source tree (default: this checkout).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_COMMAND = ["-m", "pytest", "-m", "not slow", "-q", "-x", "-p", "no:cacheprovider"]
#: packages whose installed versions are recorded (the declared ones are added)
WATCH = ("pytensor", "numba", "llvmlite", "nutpie", "h5py", "xarray-einstats", "pyarrow", "zarr", "jax", "jaxlib")

_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*(;.*)?$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def floors(requirements: list[str]) -> dict[str, str]:
    """``{name: floor}`` of requirement strings; every one must have a ``>=`` bound."""
    out = {}
    for req in requirements:
        m = _REQ.match(req)
        if not m:
            raise SystemExit(f"cannot read the requirement {req!r}")
        name, spec = m.group(1), m.group(3)
        lower = [s.strip()[2:].strip() for s in spec.split(",") if s.strip().startswith(">=")]
        if len(lower) != 1:
            raise SystemExit(f"{req!r}: needs exactly one lower bound (>=) to be tested at it")
        out[canonical(name)] = lower[0]
    return out


def declared(pyproject: Path) -> tuple[dict[str, str], dict[str, str]]:
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    proj = data["project"]
    return floors(proj["dependencies"]), floors(proj.get("optional-dependencies", {}).get("test", []))


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu": cpu, "cores": os.cpu_count(),
            "memory": mem}


def _run(cmd: list[str], *, cwd=None, timeout=None, env=None) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout)
        return p.returncode, p.stdout, time.perf_counter() - t0
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        return -1, out + f"\n[timed out after {timeout} s]", time.perf_counter() - t0


def _tail(text: str, n: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def _first_failure(text: str) -> str:
    """The pytest lines naming the first failing test and its error."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("FAILED ", "ERROR ")):
            return line.strip()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("E "):
            return "\n".join(x.strip() for x in lines[max(0, i - 3): i + 6])
    return ""


def trial(*, out: Path, python: str, source: Path, pins: dict[str, str], timeout: float) -> dict:
    venv = out / "venv"
    if venv.exists():
        shutil.rmtree(venv)
    out.mkdir(parents=True, exist_ok=True)
    rec: dict = {"pins": dict(pins), "steps": {}}
    rc, log, dt = _run([python, "-m", "venv", str(venv)])
    rec["steps"]["venv"] = {"rc": rc, "seconds": round(dt, 1)}
    if rc:
        rec.update(result="fail", stage="venv", why=_tail(log))
        return rec
    py = str(venv / "bin" / "python")
    rec["python"] = _run([py, "-c", "import platform; print(platform.python_version())"])[1].strip()
    pip = [py, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    reqs = [f"{k}=={v}" for k, v in sorted(pins.items())]
    rc, log, dt = _run(pip + ["install", "--prefer-binary", *reqs])
    (out / "pip-install.log").write_text(log)
    rec["steps"]["install"] = {"rc": rc, "seconds": round(dt, 1)}
    if rc:
        conflict = [x for x in log.splitlines() if "conflict" in x.lower() or "requires" in x.lower()
                    or x.startswith("ERROR")]
        rec.update(result="fail", stage="install", why="\n".join(conflict[-12:]) or _tail(log))
        return rec
    rc, log, dt = _run(pip + ["install", "--no-deps", str(source)])
    rec["steps"]["install_bayesln"] = {"rc": rc, "seconds": round(dt, 1)}
    if rc:
        rec.update(result="fail", stage="install bayesln", why=_tail(log))
        return rec
    rc, log, _ = _run(pip + ["check"])
    rec["pip_check"] = log.strip()
    _, freeze, _ = _run(pip + ["freeze", "--all"])
    versions = {}
    for line in freeze.splitlines():
        if "==" in line:
            name, ver = line.split("==", 1)
            versions[canonical(name)] = ver
    watch = set(pins) | set(WATCH)
    rec["installed"] = {k: versions[k] for k in sorted(versions) if k in watch}
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.setdefault("MPLBACKEND", "Agg")
    rc, log, dt = _run([py, *TEST_COMMAND], cwd=source, timeout=timeout, env=env)
    (out / "pytest.log").write_text(log)
    last = [x for x in log.strip().splitlines() if x.strip()]
    rec["steps"]["tests"] = {"rc": rc, "seconds": round(dt, 1), "summary": last[-1] if last else ""}
    if rc == 0:
        rec["result"] = "pass"
    else:
        rec.update(result="fail", stage="tests", why=_first_failure(log) or _tail(log))
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="work folder (the venv and logs go here; outside the repo)")
    ap.add_argument("--python", default="python3.11", help="interpreter that creates the venv (default python3.11)")
    ap.add_argument("--source", type=Path, default=ROOT, help="source tree to install and test (default: this checkout)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME==VERSION",
                    help="pin NAME to VERSION instead of its declared floor (repeatable)")
    ap.add_argument("--no-test-extras", action="store_true", help="do not install the test extra (diagnosis only)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds for the test run (default 1800)")
    ap.add_argument("--record", type=Path, help="append the trial to this JSON file")
    ap.add_argument("--label", default="", help="a note stored with the recorded trial")
    a = ap.parse_args(argv)
    source = a.source.resolve()
    out = a.out.resolve()
    if out == source or source in out.parents:
        ap.error("--out must be outside the source tree")
    deps, test = declared(source / "pyproject.toml")
    pins = dict(deps)
    if not a.no_test_extras:
        for k, v in test.items():
            pins.setdefault(k, v)
    overrides = {}
    for s in a.set:
        if "==" not in s:
            ap.error(f"--set {s!r}: expected NAME==VERSION")
        k, v = s.split("==", 1)
        overrides[canonical(k)] = v.strip()
    pins.update(overrides)
    t0 = time.perf_counter()
    rec = trial(out=out, python=a.python, source=source, pins=pins, timeout=a.timeout)
    rec = {"label": a.label, "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
           "declared": {**deps, **({} if a.no_test_extras else test)}, "overrides": overrides,
           "test_extras": not a.no_test_extras, **rec, "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps({k: rec[k] for k in ("label", "overrides", "result", "stage", "why", "installed", "steps")
                      if k in rec}, indent=1))
    if a.record:
        path = a.record
        doc = json.loads(path.read_text()) if path.exists() else {}
        doc.setdefault("what", "scripts/min_versions.py trials: every dependency pinned to a floor, bayesln "
                               "installed with --no-deps, the fast tests run (command in the script's docstring)")
        doc.setdefault("command", "python3.11 scripts/min_versions.py --out /tmp/bayesln-min-versions "
                                  "[--set NAME==VERSION ...]")
        doc.setdefault("test_command", "python " + " ".join(TEST_COMMAND).replace("not slow", '"not slow"'))
        doc["machine"] = {**machine(), "python": a.python, "python_version": platform.python_version()}
        doc.setdefault("trials", []).append(rec)
        path.write_text(json.dumps(doc, indent=1) + "\n")
    return 0 if rec["result"] == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
