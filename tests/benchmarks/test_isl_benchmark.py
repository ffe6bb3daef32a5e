"""The PyTorch peer of the ISL benchmark computes the same function as models/isl.py."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.foreign, pytest.mark.slow]


def test_torch_peer_matches_the_flax_network():
    import jax
    import torch
    from flax import nnx

    import models
    from benchmarks.isl_torch import TorchIslNet, load_flax, masked_pixel_loss
    from engine.losses import masked_pixel_cross_entropy
    from models.loading import flat_state

    kwargs = {"width": 4, "num_bins": 8, "tower_modules": (2, 1, 1), "upper_modules": 1}
    net = models.create("isl", num_classes=2, in_channels=3, rngs=nnx.Rngs(0), **kwargs)
    rng = np.random.default_rng(0)
    for head in net.heads:  # non-zero heads and statistics so every path matters
        head.conv.kernel[...] = rng.normal(0, 0.3, head.conv.kernel[...].shape).astype(np.float32)
    for _, module in nnx.iter_graph(net):
        if isinstance(module, nnx.BatchNorm):
            module.mean[...] = rng.normal(0, 0.1, module.mean[...].shape).astype(np.float32)
            module.var[...] = rng.uniform(0.5, 1.5, module.var[...].shape).astype(np.float32)
    net.eval()
    peer = TorchIslNet(num_classes=2, in_channels=3, **kwargs)
    load_flax(peer, flat_state(net))
    peer.eval()
    x = rng.random((2, net.input_size(10), net.input_size(10), 3)).astype(np.float32)
    graphdef, state = nnx.split(net)
    logits = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x)[0])(state, x)
    with torch.no_grad():
        theirs = peer(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    ours = np.asarray(logits).transpose(0, 3, 4, 1, 2)  # [B, L, K, O, O]
    np.testing.assert_allclose(theirs, ours, atol=2e-4, rtol=1e-4)
    target = rng.random((2, 10, 10, 2)).astype(np.float32)
    mask = (rng.random((2, 10, 10, 2)) > 0.3).astype(np.float32)
    ours_loss, _ = masked_pixel_cross_entropy(logits, target, mask, np.ones(2, np.float32))
    theirs_loss = masked_pixel_loss(
        torch.from_numpy(ours.copy()),
        torch.from_numpy(target.transpose(0, 3, 1, 2)),
        torch.from_numpy(mask.transpose(0, 3, 1, 2)),
    )
    assert float(theirs_loss) == pytest.approx(float(ours_loss), rel=1e-5)
