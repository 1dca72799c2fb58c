"""Experiment helpers that are library code because a result depends on them (the data split and
its leakage check), not one-off benchmark scripts."""
