"""P-Net (Wang et al., DeepIGeoS / BIFSeg Fig. 2a): a resolution-preserving 2D network for
segmenting the object inside a bounding box.

Six blocks. Blocks 1-5 are 3x3 convolutions (two in blocks 1-2, three in blocks 3-5) with
dilation 1, 2, 4, 8, 16, each followed by instance normalisation and ReLU; their outputs are
concatenated (5 x width channels) and block 6 (two 1x1 convolutions, models/block6.py)
classifies every pixel. Receptive field 181 x 181, as in the paper. The paper uses 64
channels; `width` is smaller here so that a crop runs interactively on a CPU (docs/methods.md).

Input (N, 1, Y, X) float32 (the z-scored box crop); forward returns (logits (N, 2, Y, X),
features (N, 5 * width, Y, X)), the features being block 6's input, kept so fine-tuning can
run block 6 alone.
"""

from __future__ import annotations

import torch
from torch import nn

from medseg_train.networks.block6 import Block6

DILATIONS = (1, 2, 4, 8, 16)
CONVS_PER_BLOCK = (2, 2, 3, 3, 3)


def _block(cin: int, cout: int, convs: int, dilation: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(convs):
        layers += [nn.Conv2d(cin if k == 0 else cout, cout, 3, padding=dilation, dilation=dilation),
                   nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class PNet(nn.Module):
    def __init__(self, width: int = 16, hidden: int = 32, in_channels: int = 1):
        super().__init__()
        self.blocks = nn.ModuleList(
            _block(in_channels if k == 0 else width, width, convs, dilation)
            for k, (convs, dilation) in enumerate(zip(CONVS_PER_BLOCK, DILATIONS)))
        self.block6 = Block6(2, 5 * width, hidden)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        features = torch.cat(outputs, dim=1)
        return self.block6(features), features
