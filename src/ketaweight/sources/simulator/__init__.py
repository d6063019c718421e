"""The mechanistic virtual-patient simulator (DESIGN.md §4): ketamine PK → antidepressant,
appetite and metabolic effects → Hall energy balance → body weight, with confounding by
indication, a clinic's observation process and the ground truth beside the data."""

from ketaweight.sources.simulator.run import HORIZON_DAYS, SimulationResult, simulate
from ketaweight.sources.simulator.scenario import MEASUREMENTS, Scenario, builtin_scenarios, load_scenario, with_measurement

__all__ = ["HORIZON_DAYS", "MEASUREMENTS", "Scenario", "SimulationResult", "builtin_scenarios", "load_scenario", "simulate", "with_measurement"]
