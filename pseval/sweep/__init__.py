"""Sweeps: the paper's experiments as one resumable command (train what is missing, evaluate, plot)."""
