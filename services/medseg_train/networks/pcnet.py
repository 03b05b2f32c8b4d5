"""PC-Net (BIFSeg Fig. 2b): the 3D P-Net with feature compression, for a box in a volume.

Blocks 1-2: two 3x3x3 convolutions each (in-plane dilation 1 and 2, none through-plane);
blocks 3-5: three 3x3x1 convolutions each ((1, 3, 3) in our (z, y, x) order) with in-plane
dilation 3, 4, 5. That gives the paper's anisotropic receptive field of 85 x 85 (in-plane) x 9
(through-plane). Each block's output is compressed by a 1x1x1 convolution to `compressed`
channels before the concatenation, so the stored features (5 x compressed channels) stay
small; block 6 (models/block6.py) classifies every voxel. Instance normalisation + ReLU after
each 3x3 convolution. Channel widths are reduced from the paper's 64 for CPU inference.

Input (N, 1, Z, Y, X) float32 (the z-scored box crop); forward returns (logits
(N, 2, Z, Y, X), features (N, 5 * compressed, Z, Y, X)).
"""

from __future__ import annotations

import torch
from torch import nn

from medseg_train.networks.block6 import Block6

# (convs, kernel, dilation) per block, (z, y, x) order
BLOCKS = (
    (2, (3, 3, 3), (1, 1, 1)),
    (2, (3, 3, 3), (1, 2, 2)),
    (3, (1, 3, 3), (1, 3, 3)),
    (3, (1, 3, 3), (1, 4, 4)),
    (3, (1, 3, 3), (1, 5, 5)),
)


def _block(cin: int, cout: int, convs: int, kernel, dilation) -> nn.Sequential:
    padding = tuple(d * (k // 2) for k, d in zip(kernel, dilation))
    layers: list[nn.Module] = []
    for k in range(convs):
        layers += [nn.Conv3d(cin if k == 0 else cout, cout, kernel, padding=padding,
                             dilation=dilation),
                   nn.InstanceNorm3d(cout, affine=True), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class PCNet(nn.Module):
    def __init__(self, width: int = 16, compressed: int = 8, hidden: int = 32,
                 in_channels: int = 1):
        super().__init__()
        self.blocks = nn.ModuleList(
            _block(in_channels if k == 0 else width, width, convs, kernel, dilation)
            for k, (convs, kernel, dilation) in enumerate(BLOCKS))
        self.compress = nn.ModuleList(
            nn.Sequential(nn.Conv3d(width, compressed, 1), nn.ReLU(inplace=True)) for _ in BLOCKS)
        self.block6 = Block6(3, 5 * compressed, hidden)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = []
        for block, compress in zip(self.blocks, self.compress):
            x = block(x)
            outputs.append(compress(x))
        features = torch.cat(outputs, dim=1)
        return self.block6(features), features
