"""bayesln._kernelwarm: the command line compiles the core-model kernel in a child
process on a machine's first fit; the fit then loads it from Numba's disk cache.
Reference: Numba's own cache-hit counters of the kernel's callbacks in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bayesln import _kernelwarm

PROBE = (
    "import json, bayesln.hierarchy.fastcore as f; "
    "print(json.dumps({'logp': f._logp_cfunc.cache_hits, 'expand': f._expand_cfunc.cache_hits}))"
)


def _hits(env) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_child_compiles_into_the_cache_the_fit_then_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    monkeypatch.delenv("BAYESLN_FAST_KERNEL", raising=False)
    assert not _kernelwarm.cached()
    assert _kernelwarm.start() is True
    assert _kernelwarm.start() is False  # one child at a time
    assert _kernelwarm.wait() == 0
    assert _kernelwarm.wait() is None
    assert _kernelwarm.cached()
    assert _kernelwarm.start() is False  # cached: nothing to do
    # a new process (as `bayesln fit` importing the kernel) loads both callbacks from the cache
    assert _hits(dict(os.environ)) == {"logp": 1, "expand": 1}


def test_no_child_when_the_kernel_is_off(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    monkeypatch.setenv("BAYESLN_FAST_KERNEL", "0")
    assert _kernelwarm.start() is False
    assert _kernelwarm.wait() is None


def test_fresh_cache_without_child_compiles_in_process(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    assert _hits(env) == {"logp": 0, "expand": 0}  # compiled, not loaded
    assert _hits(env) == {"logp": 1, "expand": 1}
