"""Metrics: PS-Eval confusion metrics, their uncertainty, and the standard SAE metrics."""
