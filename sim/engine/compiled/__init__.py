"""A compiled (Numba) engine for single-stage models: the SimPy engine's numbers, much faster.

:func:`unsupported` says whether a scenario is within its reach; the driver runs it.
Numba is imported only when the engine runs, so the rest of qsim works without it.
"""
