"""Run folders, written atomically.

A run is written into a hidden temporary folder beside its destination
(``<out>/.tmp-<name>-<pid>.<host>-XXXX``: the writing process's id and an 8-hex-digit
hash of its host name) and renamed into place only when every file is complete; an
existing run of the same name is swapped out in one rename and then removed, so a reader
never sees a half-written or half-overwritten run. A fit interrupted by Ctrl-C or
SIGTERM removes its temporary folder; a killed process (SIGKILL) can leave only a hidden
``.tmp-*`` folder, which a later run of the same name into the same ``--out`` removes, or,
killed in the instant between swapping the previous run out and the new one in, the
previous run as ``.old-<name>-<pid>.<host>-XXXX``, which that later run puts back as
``<name>`` first (or removes, when ``<name>`` exists).

Clean-up of leftovers (:func:`stale_temporaries`) removes only folders that are really
stale, and only those of the run being written (the name must match exactly: run ``a``
never touches the ``.tmp-a-b-*`` folder of run ``a-b``):

* its owner process is dead (same host; checked with ``kill(pid, 0)`` on POSIX), or
* nothing in it changed for :data:`STALE_SECONDS` (24 hours) - the only rule for owners
  that cannot be checked (another host sharing the folder, Windows), and a backstop for
  a pid recycled by an unrelated process (writing a run folder takes seconds), or
* it records no owner (``.tmp-<name>-XXXX``, left by a bayesln from before owners were
  recorded; no current process writes such a folder).

So a concurrent fit of the same name, still writing, keeps its folder; the current
process's own folders are never touched.

Layout (documented in README.md)::

    <out>/<name>/
        idata.nc            InferenceData (NetCDF via h5netcdf); attrs hold the spec (JSON),
                            spec hash, data fingerprint, bayesln/pymc/arviz versions, seed
        summary.csv/.json   posterior summary in clinical terms, intervals labelled
        diagnostics.json    per-parameter R-hat / ESS, divergences, E-BFMI, gate verdict
        comparison.csv      Bayesian vs frequentist (MH, DL, REML) vs published RRs
        study_effects.csv   per-study observed and shrunken effects
        usage.csv           how each study was used (or why it was excluded)
        predictions.csv     when the spec lists targets
        spec.json, data.csv the exact spec and data the run used
        run.json            file list, sha256 of every file (read_run_info verifies them), versions, timings
        figures/            forest plot etc., PNG and SVG
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bayesln.spec import NAME_RE

#: age (seconds, newest file inside) after which a temporary run folder whose owner cannot be
#: checked (another host, Windows, or a recycled pid) is removed by the next run of its name
STALE_SECONDS = 24 * 3600


class RunError(ValueError):
    """A run folder that cannot be written or loaded as asked."""


class Interrupted(BaseException):
    """SIGINT / SIGTERM received (raised by the command line's signal handlers). A
    BaseException, not a KeyboardInterrupt: the samplers (nutpie, PyMC) catch
    KeyboardInterrupt and return the draws so far, which must never become a run."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_STOP: int | None = None


def request_stop(signum: int) -> None:
    """Record an interruption: no run folder is committed after this. (A signal handler
    that raises inside a finaliser loses its exception; this flag is not lost.)"""
    global _STOP
    _STOP = signum


def stop_requested() -> int | None:
    return _STOP


_DEFER = 0


def interrupts_deferred() -> bool:
    """True while a run folder's files are being written: a signal handler then only
    records the stop (:func:`request_stop`) instead of raising inside a library call (an
    exception raised inside h5netcdf's or matplotlib's writers leaves half-built objects
    whose finalisers print tracebacks); :func:`atomic_run_dir` checks the flag before it
    commits and removes the temporary folder."""
    return _DEFER > 0


@contextlib.contextmanager
def _deferring_interrupts() -> Iterator[None]:
    global _DEFER
    _DEFER += 1
    try:
        yield
    finally:
        _DEFER -= 1


def check_run_name(name: str) -> str:
    if not NAME_RE.match(name) or ".." in name or "/" in name or "\\" in name:
        raise RunError(
            f"run name {name!r} is not allowed: use 1-80 letters, digits, '_', '.', '-' (it must stay inside --out)"
        )
    return name


def run_path(out: str | os.PathLike, name: str) -> Path:
    out = Path(out).resolve()
    dest = (out / check_run_name(name)).resolve()
    if dest.parent != out:
        raise RunError(f"run name {name!r} escapes the output folder {out}")
    return dest


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


_HOST = _host_tag()
# after "<name>-": "<pid>.<host>-<random>" (mkdtemp's random part has no '-' or '.'),
# or, from bayesln before owners were recorded, "<random>" alone
_OWNED_TAIL = re.compile(r"(\d+)\.([0-9a-f]{8})-[A-Za-z0-9_]+")
_LEGACY_TAIL = re.compile(r"[A-Za-z0-9_]+")


def temp_prefix(name: str, pid: int | None = None, kind: str = ".tmp") -> str:
    """The prefix of ``name``'s temporary folders written by process ``pid`` (default: this
    one); ``kind=".old"``: of the previous run it swapped out."""
    return f"{kind}-{name}-{os.getpid() if pid is None else int(pid)}.{_HOST}-"


def _pid_alive(pid: int) -> bool | None:
    """True / False when it can be told on this host, None when it cannot (Windows)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return None
    return True


def _age_seconds(folder: Path) -> float:
    """Seconds since anything in ``folder`` last changed (its newest entry)."""
    newest = folder.lstat().st_mtime
    for root, dirs, files in os.walk(folder):
        for f in (*dirs, *files):
            with contextlib.suppress(OSError):
                newest = max(newest, os.lstat(os.path.join(root, f)).st_mtime)
    return time.time() - newest


def stale_temporaries(out: str | os.PathLike, name: str, kind: str = ".tmp") -> list[Path]:
    """The temporary folders of run ``name`` in ``out`` that are safe to remove (see the
    module docstring): owner dead, owner uncheckable and older than STALE_SECONDS, or no
    owner recorded. Folders of other runs (``a-b`` for ``a``) are never listed.
    ``kind=".old"``: the swapped-out previous runs instead (see :func:`atomic_run_dir`)."""
    out = Path(out)
    head = f"{kind}-{name}-"
    found = []
    try:
        entries = list(out.iterdir())
    except OSError:
        return []
    for p in entries:
        if not p.name.startswith(head):
            continue
        tail = p.name[len(head):]
        owned = _OWNED_TAIL.fullmatch(tail)
        if owned is None and not _LEGACY_TAIL.fullmatch(tail):
            continue  # another run's folder (a longer name), or not ours at all
        try:
            if p.is_symlink() or not p.is_dir():
                continue
            if owned is None:
                found.append(p)
                continue
            pid, host = int(owned.group(1)), owned.group(2)
            if host == _HOST and pid == os.getpid():
                continue  # this process's own folder (another thread may be writing it)
            alive = _pid_alive(pid) if host == _HOST else None
            # alive: a concurrent writer, kept - unless untouched for STALE_SECONDS (a pid
            # recycled by an unrelated process must not keep a dead run's folder forever)
            if alive is False or _age_seconds(p) >= STALE_SECONDS:
                found.append(p)
        except OSError:
            continue
    return sorted(found)


def _clean_stale(out: Path, name: str) -> None:
    # a writer killed between its two renames left the previous run as .old-<name>-<pid>...
    # and no <name>: put the previous run back (the interrupted one never became the run);
    # killed after the second rename: <name> is the new run and the .old copy is garbage
    dest = out / name
    for p in stale_temporaries(out, name, kind=".old"):
        if dest.exists():
            shutil.rmtree(p, ignore_errors=True)
            continue
        with contextlib.suppress(OSError):  # cannot be put back: left as it is
            os.replace(p, dest)
    for p in stale_temporaries(out, name):
        shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def atomic_run_dir(out: str | os.PathLike, name: str, marker: str | None = None) -> Iterator[Path]:
    """Yield a temporary folder; on success it becomes ``<out>/<name>`` in one rename.

    An existing ``<out>/<name>`` that is a file is refused (RunError), never deleted; with
    ``marker`` (``"run.json"`` for run folders, ``"checks.json"`` for checks), so is an
    existing non-empty folder without that file - a folder of something else. Failing to
    write (disk full, permissions) raises RunError naming the folder; nothing is left
    behind."""
    dest = run_path(out, name)
    if dest.exists() or dest.is_symlink():
        if dest.is_symlink() or not dest.is_dir():
            raise RunError(f"{dest}: exists and is not a folder; it is not replaced (choose another --out or name)")
        if marker is not None and not (dest / marker).is_file() and any(dest.iterdir()):
            raise RunError(f"{dest}: an existing folder that is not a bayesln output (no {marker}); it is not "
                           "replaced (choose another --out or name)")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale(dest.parent, name)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(name), dir=dest.parent))
    except OSError as exc:
        raise RunError(f"{dest}: cannot be written ({exc.strerror or exc})") from None
    old = None
    try:
        try:
            with _deferring_interrupts():
                yield tmp
        except OSError as exc:
            raise RunError(f"{dest}: cannot be written ({exc.strerror or exc}: {exc.filename or ''}); "
                           "nothing was written") from None
        if _STOP is not None:
            raise Interrupted(_STOP)
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=temp_prefix(name, kind=".old"), dir=dest.parent))
            old.rmdir()
            os.replace(dest, old)
        os.replace(tmp, dest)
    finally:
        # an interruption between the two renames must not lose the existing run
        if old is not None and old.exists() and not dest.exists():
            os.replace(old, dest)
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- verification
#: run.json key holding the sha256 of every file of the run (relative path -> hex digest)
HASHES_KEY = "sha256"


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def folder_hashes(folder: str | os.PathLike) -> dict[str, str]:
    """sha256 of every file under ``folder`` (POSIX relative paths, sorted)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): file_sha256(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def read_run_info(folder: str | os.PathLike) -> dict:
    """``run.json`` of a run folder, after checking that every file it records is there
    with the recorded sha256 (RunError naming the file and both hashes otherwise). A run's
    files never change after it is written: an edited ``spec.json``, ``data.csv``,
    ``idata.nc`` or table would make every later command report something the fit did not
    produce."""
    p = Path(folder)
    if not p.is_dir():
        raise RunError(f"{p}: no such run folder")
    info_path = p / "run.json"
    if not info_path.is_file() or not (p / "idata.nc").is_file():
        raise RunError(f"{p}: not a bayesln run folder (run.json / idata.nc missing)")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{info_path}: cannot be read as JSON ({exc}); the run folder is damaged, refit it") from None
    hashes = info.get(HASHES_KEY) if isinstance(info, dict) else None
    if not isinstance(hashes, dict) or not hashes:
        raise RunError(f"{info_path}: records no file hashes (written by an older bayesln, or edited), so the run "
                       "cannot be verified; refit it with `bayesln fit`")
    for rel, want in hashes.items():
        f = (p / rel)
        if not isinstance(rel, str) or not isinstance(want, str) or ".." in Path(rel).parts or Path(rel).is_absolute():
            raise RunError(f"{info_path}: malformed file record {rel!r}; the run folder is damaged, refit it")
        if not f.is_file():
            raise RunError(f"{f}: missing from the run folder (run.json records sha256 {want}); refit the run")
        got = file_sha256(f)
        if got != want:
            raise RunError(f"{f}: changed since the run was written (sha256 recorded in run.json {want}, now {got}); "
                           "a run's files are never edited - refit with `bayesln fit` instead")
    return info


def check_output_parent(out: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse (RunError) an output location that cannot receive a folder, before any
    work: a file (or a path under a file), or a folder this process cannot write in
    (tried for real: a temporary folder is made and removed, so read-only mounts and
    permission bits are both caught). A missing folder is fine when its nearest existing
    parent can be written (it is created when the results are written)."""
    out = Path(out)
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "exists and is not a folder" if probe == out else f"is under {probe}, which is a file"
        raise RunError(f"{flag} {out}: {what}")
    try:
        tmp = tempfile.mkdtemp(prefix=".bayesln-write-probe-", dir=probe)
        os.rmdir(tmp)
    except OSError as exc:
        raise RunError(f"{flag} {out}: cannot write in {probe} ({exc.strerror or exc})") from None
    return out


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default, ensure_ascii=False) + "\n", encoding="utf-8")


def _json_default(o):
    import numpy as np
    import pandas as pd

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if o is pd.NA or (isinstance(o, float) and o != o):
        return None
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def frame_records(df) -> list[dict]:
    """DataFrame -> JSON-safe records (NA -> null)."""
    import math

    import pandas as pd

    out = []
    for rec in df.to_dict("records"):
        clean = {}
        for k, v in rec.items():
            if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
                clean[k] = None
            elif hasattr(v, "item"):
                clean[k] = v.item()
            else:
                clean[k] = v
        out.append(clean)
    return out
