"""Helper process for the kill-during-save test: saves step 2, then hangs inside step 4's save.

Step 4's arrays are written into Orbax's temporary folder; the rename that commits it
(``AtomicRenameTemporaryPath.finalize``) is replaced by a wait, and "saving" is printed so the
test can SIGKILL this process while the save is under way.

    python tests/engine/save_then_hang.py WORKDIR
"""

from __future__ import annotations

import asyncio
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from orbax.checkpoint._src.path import atomicity

from tests.engine.test_checkpoint_faults import _iterator, _state


async def _hang(self, *args, **kwargs):
    print("saving", flush=True)
    await asyncio.sleep(120)


def main(workdir: str) -> None:
    from engine.checkpoints import RunCheckpoints
    from engine.config import TrainConfig
    from engine.mesh import make_mesh
    from engine.workdir import Workdir

    config = TrainConfig(model="small_cnn", transfer="scratch", in_channels=1, workdir=workdir)
    mesh = make_mesh(1)
    checkpoints = RunCheckpoints(Workdir(workdir))
    data = _iterator()
    for _ in range(3):
        next(data)
    checkpoints.save_latest(_state(config, mesh, 2.0, 2), data)
    checkpoints.wait()
    atomicity.AtomicRenameTemporaryPath.finalize = _hang
    next(data)
    checkpoints.save_latest(_state(config, mesh, 4.0, 4), data)
    checkpoints.wait()


if __name__ == "__main__":
    main(sys.argv[1])
