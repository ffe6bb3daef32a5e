"""One of two JAX processes for test_multiprocess.py: reads its shard, writes what it saw.

Run as ``python two_process_reader.py PORT PROCESS_ID OUT_JSON``; every process has 2 CPU
devices, so the mesh spans 4 devices on 2 processes.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["JAX_PLATFORMS"] = "cpu"

import jax
import numpy as np

jax.config.update("jax_num_cpu_devices", 2)


def _local_rows(array: jax.Array) -> list[int]:
    shards = sorted(array.addressable_shards, key=lambda s: s.index[0].start)
    return np.concatenate([np.asarray(s.data) for s in shards]).tolist()


def main(port: str, process_id: str, out: str) -> None:
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=int(process_id))
    from data_pipelines.pipeline import make_eval_iterator, make_train_iterator
    from data_pipelines.preprocess import PreprocessConfig
    from data_pipelines.synthetic import synthetic_source

    mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    source = synthetic_source("train", seed=0, per_class=5)  # 20 examples
    cfg = PreprocessConfig(input_size=8, channels=1)
    train = make_train_iterator(source, cfg, global_batch_size=4, mesh=mesh, seed=0)
    train_rows = [_local_rows(next(train)["index"]) for _ in range(5)]  # one epoch: 5 x 4
    evaluation = make_eval_iterator(source, cfg, global_batch_size=8, mesh=mesh)
    eval_batches = list(evaluation)
    result = {
        "process_index": jax.process_index(),
        "global_shape": list(eval_batches[0]["image"].shape),
        "train": [row for rows in train_rows for row in rows],
        "eval_index": [row for b in eval_batches for row in _local_rows(b["index"])],
        "eval_mask": [row for b in eval_batches for row in _local_rows(b["mask"])],
    }
    with open(out, "w") as f:
        json.dump(result, f)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
