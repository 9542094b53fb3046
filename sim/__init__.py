"""qsim: a discrete-event simulator of queues in front of bounded compute.

The Python API in three calls::

    import sim
    scenario = sim.load_scenario("scenarios/burst-2k-vs-20k.yaml")
    result = sim.run(scenario)
    result.summary, result.estimates, result.requests, result.timeseries   # pandas DataFrames

and for sweeps, ``sim.sweep(sim.load_experiment("scenarios/load-curve-fifo-vs-lifo.yaml"))``.

This module is the one place the public API is re-exported; the packages below it are
layered and import only downwards: ``model`` (the scenario) <- ``engine`` (the simulation)
<- ``analysis`` (tables from records) <- ``experiments`` (replications, sweeps, plans) <-
``output`` (tables, figures, the results folder) <- ``cli``.
"""

from sim.about import __version__
from sim.analysis import theory
from sim.experiments.runner import Result, Run, run, sweep
from sim.experiments.sweep import Experiment, load_experiment
from sim.model.scenario import ScenarioError, load_scenario, scenario_from_dict
from sim.model.schema import Scenario

__all__ = [
    "Experiment", "Result", "Run", "Scenario", "ScenarioError", "__version__", "load_experiment", "load_scenario",
    "run", "scenario_from_dict", "sweep", "theory",
]  # fmt: skip
