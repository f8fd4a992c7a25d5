"""Evaluations: each is a config, an output schema and a runner (as in SAEBench)."""
