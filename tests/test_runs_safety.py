"""Safety of run folders and specs (issue 8, 'safe by construction'; issue 8, 'an existing
run is never half overwritten').

* Temporary run folders: a run removes only the leftovers that are really stale - their
  owner process is dead, or nothing in them changed for ``runs.STALE_SECONDS`` - and only
  its own (run ``a`` never touches the ``.tmp-a-b-*`` folder of run ``a-b``). A concurrent
  writer of the same name keeps its folder and commits it afterwards. The writers here are
  real subprocesses entering :func:`bayesln.runs.atomic_run_dir` (no MCMC).
* Specs are parsed, never evaluated: a hostile prior string is refused (SpecError naming
  the file and the key; exit 2 through the command line) and nothing in it runs - each
  string would create a marker file if it were executed.

Reference: the clean-up rule in the docstring of bayesln/runs.py; the prior grammar of
``bayesln.hierarchy.priors.Prior.parse`` (a distribution name and literal arguments).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bayesln import runs
from bayesln.cli import app
from bayesln.runs import atomic_run_dir, stale_temporaries
from bayesln.spec import SpecError, load_spec

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"

runner = CliRunner()


def hidden(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


# =========================================================================== temporary folders
WRITER = textwrap.dedent(
    """
    import os, sys
    from bayesln.runs import atomic_run_dir

    out, name, mode = sys.argv[1:4]
    with atomic_run_dir(out, name) as tmp:
        (tmp / "who.txt").write_text("child")
        print(tmp.name, flush=True)
        if mode == "die":        # killed while writing: nothing cleans up after it
            os._exit(0)
        sys.stdin.readline()     # mode "wait": hold the folder until told to commit
    print("committed", flush=True)
    """
)


class Writer:
    """A subprocess holding ``<out>/.tmp-<name>-*`` open inside atomic_run_dir."""

    def __init__(self, tmp_path: Path, out: Path, name: str, mode: str):
        script = tmp_path / "writer.py"
        script.write_text(WRITER, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.proc = subprocess.Popen([sys.executable, str(script), str(out), name, mode], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline().strip()
        if not line:
            self.proc.kill()
            pytest.fail(f"writer did not start: {self.proc.stderr.read()}")
        self.folder = out / line

    def commit(self) -> None:
        out, err = self.proc.communicate("go\n", timeout=60)
        assert self.proc.returncode == 0, err
        assert "committed" in out

    def wait_dead(self) -> None:
        self.proc.communicate(timeout=60)  # reaped: its pid is free, kill(pid, 0) fails

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def test_temporary_folder_records_its_owner(tmp_path):
    with atomic_run_dir(tmp_path, "r1") as tmp:
        assert tmp.name.startswith(f".tmp-r1-{os.getpid()}.")
        assert tmp.name.startswith(runs.temp_prefix("r1"))
        # this process's own folder is never stale, even for a second writer of the same name
        assert stale_temporaries(tmp_path, "r1") == []
        with atomic_run_dir(tmp_path, "r1") as inner:
            (inner / "x.txt").write_text("inner")
        assert tmp.is_dir()
        (tmp / "x.txt").write_text("outer")
    assert (tmp_path / "r1" / "x.txt").read_text() == "outer"
    assert hidden(tmp_path) == []


def test_live_concurrent_writer_keeps_its_folder(tmp_path):
    """A second fit of the same name finishes while the first is still writing: the first
    one's temporary folder survives and it commits afterwards (its run replaces the
    second one whole, as a later fit should)."""
    out = tmp_path / "runs"
    out.mkdir()
    w = Writer(tmp_path, out, "same", "wait")
    try:
        assert w.folder.is_dir() and (w.folder / "who.txt").read_text() == "child"
        assert stale_temporaries(out, "same") == []
        with atomic_run_dir(out, "same") as tmp:
            (tmp / "who.txt").write_text("parent")
        assert (out / "same" / "who.txt").read_text() == "parent"
        assert w.folder.is_dir() and (w.folder / "who.txt").read_text() == "child"
        w.commit()
    finally:
        w.kill()
    assert (out / "same" / "who.txt").read_text() == "child"
    assert sorted(p.name for p in out.iterdir()) == ["same"]


def test_dead_writers_folder_is_removed_by_the_next_run(tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    w = Writer(tmp_path, out, "same", "die")
    w.wait_dead()
    assert w.folder.is_dir()  # what a SIGKILL leaves behind
    assert stale_temporaries(out, "same") == [w.folder]
    with atomic_run_dir(out, "same") as tmp:
        (tmp / "who.txt").write_text("parent")
    assert not w.folder.exists()
    assert sorted(p.name for p in out.iterdir()) == ["same"]


def test_sigkilled_writer_is_cleaned(tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    w = Writer(tmp_path, out, "same", "wait")
    w.kill()  # SIGKILL while it holds the folder
    assert w.folder.is_dir()
    with atomic_run_dir(out, "same"):
        pass
    assert sorted(p.name for p in out.iterdir()) == ["same"]


def test_run_names_are_matched_exactly(tmp_path):
    """Run ``a`` does not clean the leftovers of ``a-b`` (nor ``a-1``, ``a.b``), dead owner or
    not; run ``a-b`` cleans its own."""
    out = tmp_path / "runs"
    out.mkdir()
    dead = [Writer(tmp_path, out, n, "die") for n in ("a-b", "a-1", "a.b")]
    for w in dead:
        w.wait_dead()
    legacy = out / ".tmp-a-b-k2j4x9q1"  # no owner recorded (bayesln before the fix)
    legacy.mkdir()
    assert stale_temporaries(out, "a") == []
    with atomic_run_dir(out, "a"):
        pass
    for w in dead:
        assert w.folder.is_dir(), w.folder
    assert legacy.is_dir()
    with atomic_run_dir(out, "a-b"):
        pass
    assert not dead[0].folder.exists() and not legacy.exists()
    assert dead[1].folder.is_dir() and dead[2].folder.is_dir()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["a", "a-b"]


def test_live_owner_but_untouched_for_long_is_stale(tmp_path):
    """A pid recycled by an unrelated process must not keep a dead run's folder forever:
    after STALE_SECONDS without a change the folder goes even if the pid is alive."""
    out = tmp_path / "runs"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        folder = out / f"{runs.temp_prefix('r1', sleeper.pid)}abc123"
        (folder / "figures").mkdir(parents=True)
        (folder / "figures" / "forest.png").write_bytes(b"x")
        assert stale_temporaries(out, "r1") == []  # alive and recent: a concurrent writer
        old = time.time() - runs.STALE_SECONDS - 60
        for p in (folder / "figures" / "forest.png", folder / "figures", folder):
            os.utime(p, (old, old))
        assert stale_temporaries(out, "r1") == [folder]
        # one recent file inside counts as activity
        os.utime(folder / "figures" / "forest.png", None)
        assert stale_temporaries(out, "r1") == []
    finally:
        sleeper.kill()
        sleeper.wait()


def test_other_hosts_folder_only_by_age(tmp_path, monkeypatch):
    """The owner of a folder written from another host (a shared --out) cannot be checked:
    it is kept until STALE_SECONDS, whatever its pid."""
    out = tmp_path / "runs"
    out.mkdir()
    folder = out / f"{runs.temp_prefix('r1', 999999999)}abc123"  # a pid that does not exist here
    folder.mkdir()
    assert stale_temporaries(out, "r1") == [folder]  # our host, dead pid
    monkeypatch.setattr(runs, "_HOST", "0" * 8 if runs._HOST != "0" * 8 else "1" * 8)
    assert stale_temporaries(out, "r1") == []  # now it is another host's folder
    old = time.time() - runs.STALE_SECONDS - 60
    os.utime(folder, (old, old))
    assert stale_temporaries(out, "r1") == [folder]


def test_files_and_symlinks_are_never_removed(tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    link = out / ".tmp-r1-abcdef12"
    link.symlink_to(target, target_is_directory=True)
    f = out / f"{runs.temp_prefix('r1', 999999999)}zzz"
    f.write_text("a file, not a folder")
    with atomic_run_dir(out, "r1"):
        pass
    assert link.is_symlink() and (target / "keep.txt").read_text() == "keep"
    assert f.is_file()


# =========================================================================== hostile specs
def hostile_priors(marker: Path) -> list[str]:
    m = str(marker)
    return [
        f"__import__('os').system('touch {m}')",
        "normal(0, [].__class__)",
        f"normal(mu=__import__('os').system('touch {m}'), sigma=1)",
        f"normal(0, open('{m}', 'w'))",
        f"half_normal(scale=(lambda: __import__('os').system('touch {m}'))())",
        f"normal(*[__import__('os').system('touch {m}')])",
        f"normal(0, f'{{__import__(\"os\").system(\"touch {m}\")}}')",
        f"eval('__import__(\"os\").system(\"touch {m}\")')",
        "normal(0, ().__class__.__bases__[0].__subclasses__())",
        "normal(0, 10**10**10)",
    ]


def more_hostile_priors(marker: Path) -> list[str]:
    """Strings that parse to something other than one call (a BoolOp, a Tuple, a call of a
    call): Prior.parse refuses them before reading any argument."""
    return [
        f"normal(0, 1) or __import__('os').system('touch {marker}')",
        "normal(0, 1), normal(0, 1)",
        "normal(0, 1)(2, 3)",
    ]


def write_spec(tmp_path: Path, base: Path, key: str, prior: str) -> Path:
    text = base.read_text(encoding="utf-8")
    lines = text.splitlines()
    i = lines.index("[priors]")
    lines = [ln for ln in lines if not ln.startswith(f"{key} =")]
    lines.insert(i + 1, f"{key} = '''{prior}'''")  # a TOML multi-line literal string: any quotes inside
    path = tmp_path / "hostile.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def check_refused(tmp_path: Path, prior: str, key: str, marker: Path, base: Path) -> None:
    spec = write_spec(tmp_path, base, key, prior)
    with pytest.raises(SpecError) as ei:
        load_spec(spec)
    msg = str(ei.value)
    assert f"key 'priors.{key}'" in msg or "key 'priors'" in msg, msg
    assert str(spec) in msg or spec.name in msg, msg
    out = tmp_path / "runs"
    for cmd in (["fit", str(spec), "--out", str(out), "--quiet"], ["predict", str(spec), "--quiet"]):
        r = runner.invoke(app, cmd)
        assert r.exit_code == 2, (cmd, r.exit_code, r.output, r.exception)
        err = r.stderr.strip()
        assert err.startswith("error:") and "Traceback" not in err and "\n\n" not in err, err
        assert "priors" in err and key in err, err
    assert not marker.exists(), "the prior string was executed"
    assert not out.exists()


@pytest.mark.parametrize("key,base", [("tau", MODELS / "total_response.toml"), ("d", MODELS / "total_response.toml"),
                                      ("sigma_mu", MODELS / "predict_total_response.toml")])
def test_hostile_prior_strings_are_refused_and_never_run(tmp_path, key, base):
    marker = tmp_path / "pwned"
    for i, prior in enumerate(hostile_priors(marker)):
        sub = tmp_path / f"case{i}"
        sub.mkdir()
        check_refused(sub, prior, key, marker, base)


@pytest.mark.parametrize("case", [0, 1, 2], ids=["boolop", "tuple", "call_of_call"])
def test_hostile_prior_strings_that_are_not_one_call_exit_2(tmp_path, case):
    marker = tmp_path / "pwned"
    check_refused(tmp_path, more_hostile_priors(marker)[case], "tau", marker, MODELS / "total_response.toml")


def test_prior_parser_uses_no_eval():
    """The prior and spec modules hold no eval / exec / pickle (parsed, never evaluated)."""
    import re

    for rel in ("bayesln/hierarchy/priors.py", "bayesln/spec.py", "bayesln/predict/targets.py", "bayesln/runs.py"):
        src = (ROOT / rel).read_text(encoding="utf-8")
        for bad in (r"(?<![\w.])eval\(", r"(?<![\w.])exec\(", r"\bpickle\b", r"(?<![\w.])compile\("):
            assert not re.search(bad, src), (rel, bad)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: kill(pid, 0) fails until the pid is reused
    return proc.pid


def _leftover(out: Path, kind: str, name: str, pid: int, text: str) -> Path:
    p = out / f"{kind}-{name}-{pid}.{runs._HOST}-abc123"
    p.mkdir()
    (p / "who.txt").write_text(text)
    return p


def test_killed_between_the_two_renames_the_previous_run_comes_back(tmp_path):
    """SIGKILL after the previous run was swapped out (.old-*) and before the new one was
    swapped in leaves no run folder at all; the next write of that name puts the previous
    run back before anything else, so a failed next run still leaves it in place."""
    out = tmp_path / "runs"
    out.mkdir()
    pid = _dead_pid()
    _leftover(out, ".old", "same", pid, "previous")
    _leftover(out, ".tmp", "same", pid, "interrupted")
    assert not (out / "same").exists()
    assert [p.name for p in stale_temporaries(out, "same", kind=".old")] == [f".old-same-{pid}.{runs._HOST}-abc123"]
    with pytest.raises(RuntimeError), atomic_run_dir(out, "same"):
        raise RuntimeError("this fit fails")
    assert (out / "same" / "who.txt").read_text() == "previous"
    assert sorted(p.name for p in out.iterdir()) == ["same"]


def test_killed_after_the_second_rename_the_old_copy_is_removed(tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    (out / "same").mkdir()
    (out / "same" / "who.txt").write_text("current")
    _leftover(out, ".old", "same", _dead_pid(), "previous")
    with atomic_run_dir(out, "same") as tmp:
        (tmp / "who.txt").write_text("next")
    assert (out / "same" / "who.txt").read_text() == "next"
    assert sorted(p.name for p in out.iterdir()) == ["same"]


def test_a_live_writers_swapped_out_run_is_left_alone(tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    live = _leftover(out, ".old", "same", os.getppid(), "previous")  # the parent process is alive
    other = _leftover(out, ".old", "same-b", _dead_pid(), "another run's")
    with atomic_run_dir(out, "same") as tmp:
        (tmp / "who.txt").write_text("next")
    assert live.is_dir() and other.is_dir()
    assert (out / "same" / "who.txt").read_text() == "next"


def test_the_swapped_out_run_records_its_owner(tmp_path, monkeypatch):
    seen = []
    real = os.replace

    def spy(a, b):
        seen.append(Path(b).name)
        return real(a, b)

    with atomic_run_dir(tmp_path, "r") as tmp:
        (tmp / "x").write_text("1")
    monkeypatch.setattr(runs.os, "replace", spy)
    with atomic_run_dir(tmp_path, "r") as tmp:
        (tmp / "x").write_text("2")
    assert seen[0].startswith(f".old-r-{os.getpid()}.{runs._HOST}-"), seen
    assert (tmp_path / "r" / "x").read_text() == "2"
    assert hidden(tmp_path) == []
