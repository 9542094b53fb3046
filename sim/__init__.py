"""qsim: a discrete-event simulator of queues in front of bounded compute.

The Python API in three calls::

    import sim
    scenario = sim.load_scenario("scenarios/burst-2k-vs-20k.yaml")
    result = sim.run(scenario)
    result.summary, result.requests, result.timeseries   # pandas DataFrames
"""

from sim.experiment import Result, Run, run
from sim.scenario import ScenarioError, load_scenario, scenario_from_dict
from sim.schema import Scenario

__version__ = "0.1.0"

__all__ = ["Result", "Run", "Scenario", "ScenarioError", "__version__", "load_scenario", "run", "scenario_from_dict"]
