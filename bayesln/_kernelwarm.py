"""Compile the core-model kernel on a second core while this process imports the stack.

On a machine's first ``bayesln fit`` Numba compiles :mod:`bayesln.hierarchy.fastcore`
(~2.7 s) and writes it to its disk cache; the command also spends ~3 s importing PyMC,
ArviZ and matplotlib before it needs the kernel. :func:`start` (called by the command line
before those imports) runs the compilation in a child process that loads only the kernel
module (numba + numpy, not the package), and :func:`wait` (called by ``fit_core`` before it
imports the kernel) waits for the child, so the kernel is then loaded from the cache. Both
are no-ops when the cache already holds the kernel, when the kernel is switched off
(``BAYESLN_FAST_KERNEL=0``) or when the child cannot start; the child's failure only means
the kernel is compiled in this process as usual. This module imports nothing heavy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["cached", "off", "start", "wait"]

SOURCE = Path(__file__).resolve().parent / "hierarchy" / "fastcore.py"
#: the last function of the kernel module Numba caches (see fastcore.py)
_MARKER = "fastcore._expand_cfunc-*.nbi"
_CHILD = (
    "import importlib.util, sys\n"
    "s = importlib.util.spec_from_file_location('bayesln.hierarchy.fastcore', sys.argv[1])\n"
    "m = importlib.util.module_from_spec(s)\n"
    "sys.modules[s.name] = m\n"
    "s.loader.exec_module(m)\n"
)
_proc: subprocess.Popen | None = None


def off() -> bool:
    """True when ``BAYESLN_FAST_KERNEL`` (0 / false / no / off) switches the kernel off."""
    return os.environ.get("BAYESLN_FAST_KERNEL", "1") in ("0", "false", "no", "off")


def cached() -> bool:
    """True when a Numba cache file of the kernel exists where Numba would look for it
    (``NUMBA_CACHE_DIR``; else the module's ``__pycache__`` or the user cache folder)."""
    env = os.environ.get("NUMBA_CACHE_DIR")
    places = [Path(env)] if env else [SOURCE.parent / "__pycache__", Path.home() / ".cache" / "numba"]
    for p in places:
        try:
            if p.is_dir() and (any(p.glob(_MARKER)) or (p.name != "__pycache__" and any(p.rglob(_MARKER)))):
                return True
        except OSError:  # pragma: no cover - unreadable folder: assume not cached
            continue
    return False


def start() -> bool:
    """Start compiling the kernel in a child process unless it is cached; True if started."""
    global _proc
    if _proc is not None or off() or not SOURCE.exists() or cached():
        return False
    try:
        _proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(SOURCE)], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:  # pragma: no cover - no fork / exec here: compile in-process later
        _proc = None
        return False
    return True


def wait(timeout: float = 300.0) -> int | None:
    """Wait for the child started by :func:`start` (if any); its exit code, or None."""
    global _proc
    proc, _proc = _proc, None
    if proc is None:
        return None
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # pragma: no cover - a stuck compiler: do it here
        proc.kill()
        return None
