"""Run folders, written atomically.

A run is written into a hidden temporary folder beside its destination
(``<out>/.tmp-<name>-XXXX``) and renamed into place only when every file is complete; an
existing run of the same name is swapped out in one rename and then removed, so a reader
never sees a half-written or half-overwritten run. A fit interrupted by Ctrl-C or
SIGTERM removes its temporary folder; a killed process (SIGKILL) can leave only a hidden
``.tmp-*`` folder, which the next run into the same ``--out`` removes.

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
        run.json            file list, hashes, versions, timings
        figures/            forest plot etc., PNG and SVG
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bayesln.spec import NAME_RE

STALE_SECONDS = 0  # stale temporaries from killed runs are removed at the next run


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


def _clean_stale(out: Path, name: str) -> None:
    for p in out.glob(f".tmp-{name}-*"):
        with contextlib.suppress(OSError):
            if time.time() - p.stat().st_mtime >= STALE_SECONDS:
                shutil.rmtree(p)


@contextlib.contextmanager
def atomic_run_dir(out: str | os.PathLike, name: str) -> Iterator[Path]:
    """Yield a temporary folder; on success it becomes ``<out>/<name>`` in one rename."""
    dest = run_path(out, name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(dest.parent, name)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=dest.parent))
    old = None
    try:
        yield tmp
        if _STOP is not None:
            raise Interrupted(_STOP)
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".old-{name}-", dir=dest.parent))
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
