"""The In Silico Labeling network of ``models/isl.py`` written in PyTorch: the benchmark's peer.

Same towers, modules, heads, sizes and numerics (BatchNorm eps 1e-3, momentum 0.1 in PyTorch's
convention = Flax 0.9; VALID convolutions; max pool of the module input beside the expansion;
centre-crop / average-pool / nearest-upsample passthroughs; zero-padded channels).
``load_flax`` copies a Flax model's weights into it, so tests/benchmarks/test_isl_benchmark.py
checks that both compute the same function before their speeds are compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.isl import tower_margin


def _bn(features: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(features, eps=1e-3, momentum=0.1)


def _relu_tanh(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([F.relu(x), torch.tanh(x)], dim=1)


def _match_depth(x: torch.Tensor, depth: int) -> torch.Tensor:
    have = x.shape[1]
    if have >= depth:
        return x[:, :depth]
    return F.pad(x, (0, 0, 0, 0, 0, depth - have))


class Minception(nn.Module):
    def __init__(self, in_features: int, expand: int, reduce: int, kind: str):
        super().__init__()
        self.kind = kind
        self.out_features = reduce if kind == "up" else max(reduce, in_features)
        self.bn_in = _bn(in_features)
        if kind == "up":
            self.expand = nn.ConvTranspose2d(2 * in_features, expand, 2, stride=2, bias=False)
            pooled = 0
        else:
            k, s = (3, 1) if kind == "same" else (4, 2)
            self.expand = nn.Conv2d(2 * in_features, expand, k, stride=s, bias=False)
            pooled = in_features
        self.bn_mid = _bn(expand + pooled)
        self.reduce = nn.Conv2d(2 * (expand + pooled), self.out_features, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(_relu_tanh(self.bn_in(x)))
        if self.kind == "same":
            h = torch.cat([h, F.max_pool2d(x, 3, 1)], dim=1)
            through = x[:, :, 1:-1, 1:-1]
        elif self.kind == "down":
            h = torch.cat([h, F.max_pool2d(x, 4, 2)], dim=1)
            through = F.avg_pool2d(x[:, :, 1:-1, 1:-1], 2, 2)
        else:
            through = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        h = self.reduce(_relu_tanh(self.bn_mid(h)))
        return h + _match_depth(through, self.out_features)


class LabelHead(nn.Module):
    def __init__(self, in_features: int, num_bins: int):
        super().__init__()
        self.bn = _bn(in_features)
        self.conv = nn.Conv2d(2 * in_features, num_bins, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(_relu_tanh(self.bn(x)))


class TorchIslNet(nn.Module):
    """NCHW in, logits ``[B, L, K, O, O]`` out (the Flax model's axes moved)."""

    def __init__(
        self,
        num_classes: int = 3,
        in_channels: int = 7,
        width: int = 16,
        tower_modules: Sequence[int] = (4, 3, 2),
        upper_modules: int = 2,
        num_bins: int = 256,
    ):
        super().__init__()
        self.margins = [tower_margin(s, n) for s, n in enumerate(tower_modules)]
        towers = []
        for s, count in enumerate(tower_modules):
            layers, features = [], in_channels
            kinds = (
                [("down", d) for d in range(1, s + 1)]
                + [("same", s)] * count
                + [("up", d) for d in range(s - 1, -1, -1)]
            )
            for kind, d in kinds:
                layers.append(Minception(features, 2 * width * 2**d, width * 2**d, kind))
                features = layers[-1].out_features
            towers.append(nn.ModuleList(layers))
        self.towers = nn.ModuleList(towers)
        features = sum(t[-1].out_features for t in towers)
        upper = []
        for _ in range(upper_modules):
            upper.append(Minception(features, features, features, "same"))
            features = upper[-1].out_features
        self.upper = nn.ModuleList(upper)
        self.heads = nn.ModuleList([LabelHead(features, num_bins) for _ in range(num_classes)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        merged = x.shape[2] - max(self.margins)
        outs = []
        for s, tower in enumerate(self.towers):
            size = merged + self.margins[s]
            top = (x.shape[2] - size) // 2
            h = x[:, :, top : top + size, top : top + size]
            for layer in tower:
                h = layer(h)
            outs.append(h)
        h = torch.cat(outs, dim=1)
        for layer in self.upper:
            h = layer(h)
        return torch.stack([head(h) for head in self.heads], dim=1)


def masked_pixel_loss(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The engine's loss (``engine.losses.masked_pixel_cross_entropy``) on ``[B, L, K, H, W]``."""
    bins = logits.shape[2]
    index = torch.clamp(torch.round(target * (bins - 1)), 0, bins - 1).long()  # [B, L, H, W]
    per_pixel = F.cross_entropy(logits.flatten(0, 1), index.flatten(0, 1), reduction="none")
    per_pixel = per_pixel.view_as(mask)
    count = mask.sum(dim=(0, 2, 3))
    per_label = (per_pixel * mask).sum(dim=(0, 2, 3)) / count.clamp(min=1)
    present = (count > 0).float()
    return (per_label * present).sum() / present.sum().clamp(min=1)


BN_NAMES = {"scale": "weight", "mean": "running_mean", "var": "running_var"}


def load_flax(torch_net: TorchIslNet, flat: Mapping[str, np.ndarray]) -> None:
    """Copy ``models.flat_state(flax_model)`` into ``torch_net`` (HWIO -> OIHW; BatchNorm
    scale/bias/mean/var -> weight/bias/running_mean/running_var; the 2x2/2 transposed kernel
    with its taps flipped, Flax applying it as a correlation of the dilated input)."""
    state = {}
    for key, value in flat.items():
        path, leaf = key.rsplit("/", 1)
        name = path.replace("/", ".")
        value = np.asarray(value)
        if leaf == "kernel":
            if _is_up(torch_net, name):
                state[f"{name}.weight"] = np.ascontiguousarray(
                    value[::-1, ::-1].transpose(2, 3, 0, 1)
                )
            else:
                state[f"{name}.weight"] = value.transpose(3, 2, 0, 1)
        else:
            state[f"{name}.{BN_NAMES.get(leaf, leaf)}"] = value
    tensors = {k: torch.from_numpy(np.array(v, np.float32)) for k, v in state.items()}
    missing, unexpected = torch_net.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")


def _is_up(net: TorchIslNet, name: str) -> bool:
    module = net.get_submodule(name)
    return isinstance(module, nn.ConvTranspose2d)
