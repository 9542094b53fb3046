"""qsim: a discrete-event simulator of queues in front of bounded compute.

The Python API in three calls::

    import sim
    scenario = sim.load_scenario("scenarios/burst-2k-vs-20k.yaml")
    result = sim.run(scenario)
    result.summary, result.requests, result.timeseries   # pandas DataFrames

and for sweeps, ``sim.sweep(sim.load_experiment("scenarios/load-curve-fifo-vs-lifo.yaml"))``.
"""

from sim.experiment import Result, Run, run, sweep
from sim.scenario import ScenarioError, load_scenario, scenario_from_dict
from sim.schema import Scenario
from sim.sweep import Experiment, load_experiment

__version__ = "0.1.0"

__all__ = [
    "Experiment", "Result", "Run", "Scenario", "ScenarioError", "__version__", "load_experiment", "load_scenario",
    "run", "scenario_from_dict", "sweep",
]  # fmt: skip
