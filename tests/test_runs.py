"""Run folders are written atomically: a reader never sees a half-written run, an
interrupted fit (Ctrl-C = SIGINT, or SIGTERM from a scheduler) leaves no run folder and
no temporary folder, and an existing run of the same name survives a second fit that is
killed.

The first tests exercise ``bayesln.runs.atomic_run_dir`` directly (no MCMC). The slow
tests start ``bayesln fit`` as a subprocess and signal it at two moments:

* while it samples: the subprocess is ``bayesln.cli.main()`` with ``nutpie.sample``
  wrapped to print a marker first, so the signal lands inside the sampler (nutpie and
  PyMC catch KeyboardInterrupt and return the draws so far - those must not be written);
* while it writes the run folder: the real console script, signalled as soon as its
  hidden ``.tmp-<name>-*`` folder appears in ``--out``.

Reference: the atomicity contract in the docstring of bayesln/runs.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bayesln import runs
from bayesln.runs import Interrupted, RunError, atomic_run_dir, check_run_name, run_path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "models" / "total_response.toml"
NAME = "total_response"
TINY = ["--draws", "200", "--tune", "200", "--chains", "2", "--allow-failed-gate"]


def tree(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def hidden(out: Path) -> list[str]:
    """Hidden (temporary) folders in ``out``; a fit creates ``out`` only when it writes."""
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".")) if out.exists() else []


# =========================================================================== atomic_run_dir
def test_success_renames_into_place(tmp_path):
    with atomic_run_dir(tmp_path, "r1") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".tmp-r1-")
        assert not (tmp_path / "r1").exists()  # nothing visible until complete
        (tmp / "a.txt").write_text("one")
    assert (tmp_path / "r1" / "a.txt").read_text() == "one"
    assert hidden(tmp_path) == []


def test_error_inside_leaves_nothing(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with atomic_run_dir(tmp_path, "r1") as tmp:
            (tmp / "a.txt").write_text("half")
            1 / 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exc", [KeyboardInterrupt, Interrupted])
def test_interruption_inside_keeps_the_existing_run(tmp_path, exc):
    with atomic_run_dir(tmp_path, "r1") as tmp:
        (tmp / "a.txt").write_text("old")
    before = tree(tmp_path / "r1")
    with pytest.raises(exc):
        with atomic_run_dir(tmp_path, "r1") as tmp:
            (tmp / "a.txt").write_text("new, half written")
            raise exc(signal.SIGINT) if exc is Interrupted else exc()
    assert tree(tmp_path / "r1") == before
    assert hidden(tmp_path) == []


def test_existing_run_is_replaced_whole(tmp_path):
    with atomic_run_dir(tmp_path, "r1") as tmp:
        (tmp / "old-only.txt").write_text("old")
    with atomic_run_dir(tmp_path, "r1") as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in (tmp_path / "r1").iterdir()) == ["new.txt"]
    assert hidden(tmp_path) == []


def test_failure_between_the_two_renames_restores_the_old_run(tmp_path, monkeypatch):
    """The swap is two renames (old run aside, new run in); an interruption between
    them must put the old run back rather than leave no run at all."""
    with atomic_run_dir(tmp_path, "r1") as tmp:
        (tmp / "a.txt").write_text("old")
    before = tree(tmp_path / "r1")
    real = os.replace

    def replace(src, dst):
        if Path(src).name.startswith(".tmp-"):
            raise Interrupted(signal.SIGTERM)
        return real(src, dst)

    monkeypatch.setattr(runs.os, "replace", replace)
    with pytest.raises(Interrupted):
        with atomic_run_dir(tmp_path, "r1") as tmp:
            (tmp / "a.txt").write_text("new")
    assert tree(tmp_path / "r1") == before
    assert hidden(tmp_path) == []


def test_a_requested_stop_commits_nothing(tmp_path, monkeypatch):
    """A signal whose exception was swallowed (e.g. raised inside a finaliser) still
    stops the commit: the stop flag is checked before the rename."""
    monkeypatch.setattr(runs, "_STOP", None)
    with atomic_run_dir(tmp_path, "r1") as tmp:
        (tmp / "a.txt").write_text("old")
    runs.request_stop(signal.SIGTERM)
    assert runs.stop_requested() == signal.SIGTERM
    with pytest.raises(Interrupted):
        with atomic_run_dir(tmp_path, "r1") as tmp:
            (tmp / "a.txt").write_text("new")
    assert (tmp_path / "r1" / "a.txt").read_text() == "old"
    assert hidden(tmp_path) == []


def test_stale_temporary_folders_are_removed_by_the_next_run(tmp_path):
    """SIGKILL cannot be caught: it leaves a hidden .tmp-* folder, which the next run
    into the same --out removes."""
    stale = tmp_path / ".tmp-r1-abandoned"
    stale.mkdir()
    (stale / "idata.nc").write_text("partial")
    with atomic_run_dir(tmp_path, "r1") as tmp:
        (tmp / "a.txt").write_text("x")
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r1"]


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".", "", "x/../../y", "/abs", ".hidden", "a\\b", "x" * 81])
def test_run_names_must_stay_inside_out(tmp_path, bad):
    with pytest.raises(RunError, match="not allowed|escapes"):
        run_path(tmp_path, bad)
    with pytest.raises(RunError):
        with atomic_run_dir(tmp_path, bad):
            pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("good", ["total_response", "tr.v2", "A-1", "x" * 80])
def test_good_run_names(tmp_path, good):
    assert check_run_name(good) == good
    assert run_path(tmp_path, good) == (tmp_path / good).resolve()


# =========================================================================== killed fits
SHIM = textwrap.dedent(
    """
    import sys
    import nutpie

    _real = nutpie.sample

    def _sample(*args, **kwargs):
        print("SAMPLING-STARTED", file=sys.stderr, flush=True)
        return _real(*args, **kwargs)

    nutpie.sample = _sample
    from bayesln.cli import main

    sys.argv = ["bayesln", *sys.argv[1:]]
    main()
    """
)


def installed_script() -> Path:
    exe = Path(sys.executable).parent / ("bayesln.exe" if os.name == "nt" else "bayesln")
    if exe.exists():
        return exe
    found = shutil.which("bayesln")
    assert found, "the bayesln console script is not installed"
    return Path(found)


class Fit:
    """``bayesln fit`` in a subprocess, output to files (a full pipe cannot stall it)."""

    def __init__(self, cmd: list[str], workdir: Path):
        self.err_path = workdir / f"stderr-{time.monotonic_ns()}.txt"
        self.out_path = self.err_path.with_name(self.err_path.name.replace("stderr", "stdout"))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=err)

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_for(self, condition, what: str, timeout: float = 600) -> None:
        t0 = time.monotonic()
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"bayesln fit ended (exit {self.proc.returncode}) before {what}:\n{self.stderr}")
            if time.monotonic() - t0 > timeout:
                pytest.fail(f"no {what} after {timeout} s:\n{self.stderr}")
            time.sleep(0.02)

    def signal_and_wait(self, sig: int, timeout: float = 120) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"bayesln fit did not stop within {timeout} s of {signal.Signals(sig).name}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def fit_cmd(out: Path, *extra: str) -> list[str]:
    return [str(installed_script()), "fit", str(SPEC), "--out", str(out), *TINY, *extra]


def assert_stopped_cleanly(fit: Fit, code: int, sig: int, out: Path) -> None:
    err = fit.stderr
    assert code == 128 + sig, (code, err)
    assert f"interrupted by {signal.Signals(sig).name}" in err, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert hidden(out) == [], hidden(out)


SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
def test_signal_while_sampling_writes_no_run(tmp_path, sig):
    out = tmp_path / "runs"
    shim = tmp_path / "shim.py"
    shim.write_text(SHIM, encoding="utf-8")
    # long enough that the signal certainly arrives inside the sampler
    # (200,000 draws: 20,000 were done within the 2 s on an idle core, so the signal could
    # land while the run folder was being written - that case has its own test below)
    cmd = [sys.executable, str(shim), "fit", str(SPEC), "--out", str(out), "--draws", "200000", "--tune", "200",
           "--chains", "2", "--allow-failed-gate"]
    fit = Fit(cmd, tmp_path)
    try:
        fit.wait_for(lambda: "SAMPLING-STARTED" in fit.stderr, "sampling")
        time.sleep(2)
        code = fit.signal_and_wait(sig)
    finally:
        fit.kill()
    assert_stopped_cleanly(fit, code, sig, out)
    assert not (out / NAME).exists()


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
def test_signal_while_writing_the_run_folder_leaves_nothing(tmp_path, sig):
    out = tmp_path / "runs"
    fit = Fit(fit_cmd(out), tmp_path)
    try:
        fit.wait_for(lambda: out.is_dir() and any(out.glob(f".tmp-{NAME}-*")), "temporary run folder")
        code = fit.signal_and_wait(sig)
    finally:
        fit.kill()
    assert_stopped_cleanly(fit, code, sig, out)
    assert not (out / NAME).exists()
    assert list(out.iterdir()) == []  # --out itself may stay (it was created to write into)


@pytest.mark.slow
def test_killed_second_fit_leaves_the_existing_run_intact(tmp_path):
    out = tmp_path / "runs"
    first = subprocess.run(fit_cmd(out), cwd=tmp_path, capture_output=True, text=True, timeout=900,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert first.returncode == 0, first.stderr
    before = tree(out / NAME)
    assert "idata.nc" in before and "run.json" in before
    # the second fit (another seed, so its files would differ) is killed while writing
    fit = Fit(fit_cmd(out, "--seed", "11"), tmp_path)
    try:
        fit.wait_for(lambda: any(out.glob(f".tmp-{NAME}-*")), "temporary run folder")
        code = fit.signal_and_wait(signal.SIGTERM)
    finally:
        fit.kill()
    assert_stopped_cleanly(fit, code, signal.SIGTERM, out)
    assert tree(out / NAME) == before
    assert sorted(p.name for p in out.iterdir()) == [NAME]
