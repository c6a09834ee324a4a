"""The default sampler settings, in one place below everything that uses them (specs,
``SamplerSettings``, ``fit_core``, ``bayesln.fit``); no imports, so a spec's validation
does not load the sampling stack.

4 x 2000 draws at target acceptance 0.995: with the former 4 x 1000 at 0.99, 4 of 30
simulated reviews of 5-30 trials missed the gate on tau's ESS / R-hat; with these, 40 of 40
of 20-30 trials passed at the first attempt (benchmarks/calibration.py, issue 21).
"""

DEFAULT_SAMPLER = {"draws": 2000, "tune": 1000, "chains": 4, "target_accept": 0.995}
