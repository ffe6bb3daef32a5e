"""Evaluation: the paper's metrics, validation during training, pixel metrics, probe studies."""
