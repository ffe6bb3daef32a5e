"""Which images an evaluation reads: a split of the run's data set, or of other data."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class EvalData:
    """A split opened by the run's data policy; ``None`` fields keep the run's own setting."""

    split: str = "test"
    dataset: str | None = None
    data_dir: str | None = None
    on_bad_image: str | None = None  # "error" | "skip"

    def __post_init__(self) -> None:
        if self.split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {self.split!r}; expected train, val or test")
