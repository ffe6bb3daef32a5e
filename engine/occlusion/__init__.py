"""Occlusion sensitivity: the batched sweep, incremental inference, and map fidelity."""
