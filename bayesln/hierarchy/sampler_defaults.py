"""The default sampler settings and the seed check, in one place below everything that uses
them (specs, ``SamplerSettings``, ``fit_core``, ``bayesln.fit``, predictions); only the
standard library, so a spec's validation or a prediction from a run folder does not load the
sampling stack (PyMC).

4 x 2000 draws at target acceptance 0.995: with the former 4 x 1000 at 0.99, 4 of 30
simulated reviews of 5-30 trials missed the gate on tau's ESS / R-hat; with these, 40 of 40
of 20-30 trials passed at the first attempt (benchmarks/calibration.py).
"""

DEFAULT_SAMPLER = {"draws": 2000, "tune": 1000, "chains": 4, "target_accept": 0.995}


def check_seed(seed) -> int:
    """``seed`` as an int, checked: required, an integer (Python or NumPy, not bool), in
    [0, 2**63)."""
    import numbers

    if seed is None or isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer (it is required, for reproducibility), got {seed!r}")
    if seed < 0 or seed >= 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    return int(seed)
