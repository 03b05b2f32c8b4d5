"""2D and 3D U-Nets as MIDeepSeg uses them (sec. 2.3): Ronneberger's 2D U-Net and Cicek's 3D
U-Net with instance normalisation instead of batch normalisation and fewer feature channels.

Input (N, C, Y, X) or (N, C, Z, Y, X) float32; output logits (N, 2, ...) of the same spatial
size (background, foreground). Spatial sizes must be divisible by 2 ** (levels - 1).
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_block(dims: int, cin: int, cout: int) -> nn.Sequential:
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    norm = nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d
    return nn.Sequential(
        conv(cin, cout, 3, padding=1), norm(cout, affine=True), nn.LeakyReLU(0.01, inplace=True),
        conv(cout, cout, 3, padding=1), norm(cout, affine=True), nn.LeakyReLU(0.01, inplace=True))


class UNet(nn.Module):
    """U-Net of `levels` resolutions with `base` x 2^k channels at level k.

    dims: 2 or 3. in_channels: image + cue map (2) for MIDeepSeg, image + prior for slice
    propagation. The paper divides U-Net's 64..1024 channels by four (16..256); `base` sets the
    first level's width."""

    def __init__(self, dims: int = 2, in_channels: int = 2, base: int = 16, levels: int = 4):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError("dims must be 2 or 3")
        self.dims, self.levels = dims, levels
        widths = [base * 2 ** k for k in range(levels)]
        pool = nn.MaxPool2d if dims == 2 else nn.MaxPool3d
        up = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.down = nn.ModuleList()
        cin = in_channels
        for width in widths:
            self.down.append(_conv_block(dims, cin, width))
            cin = width
        self.pool = pool(2)
        self.up = nn.ModuleList(up(widths[k + 1], widths[k], 2, stride=2)
                                for k in range(levels - 1))
        self.decode = nn.ModuleList(_conv_block(dims, 2 * widths[k], widths[k])
                                    for k in range(levels - 1))
        self.head = conv(widths[0], 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k, block in enumerate(self.down):
            x = block(x)
            if k < self.levels - 1:
                skips.append(x)
                x = self.pool(x)
        for k in reversed(range(self.levels - 1)):
            x = self.decode[k](torch.cat([skips[k], self.up[k](x)], dim=1))
        return self.head(x)
