"""The two networks of RefineNet (refinenet-interactive-deep-refinement paper, sec. 2.1, Fig. 2).

- `Backbone`: a 2D U-Net (instance norm, as unet.py) with the paper's pyramid: a 1x1
  convolution before each of the last three up-sampling levels gives the initial segmentation
  at 1/4, 1/2 and 1x of the input. One sigmoid channel per organ. Output (full, half, quarter).
- `Refiner`: image + initial result + foreground / background seed maps at 1x; the initial
  result and the seed maps are pooled to 1/2 and 1/4 and concatenated with the encoder's
  features at those scales (the paper merges each scale's initial result with the seed images
  by concatenation and up-convolution), then a U-Net decoder. Output logits (N, 2, Y, X).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from medseg_train.networks.unet import _conv_block


class Backbone(nn.Module):
    def __init__(self, in_channels: int = 1, classes: int = 6, base: int = 16, levels: int = 4):
        super().__init__()
        self.levels = levels
        widths = [base * 2 ** k for k in range(levels)]
        self.down = nn.ModuleList()
        cin = in_channels
        for width in widths:
            self.down.append(_conv_block(2, cin, width))
            cin = width
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[k + 1], widths[k], 2, stride=2)
                                for k in range(levels - 1))
        self.decode = nn.ModuleList(_conv_block(2, 2 * widths[k], widths[k])
                                    for k in range(levels - 1))
        # the pyramid: a 1x1 convolution on the decoder's outputs at 1x, 1/2, 1/4
        self.heads = nn.ModuleList(nn.Conv2d(widths[k], classes, 1) for k in range(3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        skips = []
        for k, block in enumerate(self.down):
            x = block(x)
            if k < self.levels - 1:
                skips.append(x)
                x = self.pool(x)
        outputs: dict[int, torch.Tensor] = {}
        for k in reversed(range(self.levels - 1)):
            x = self.decode[k](torch.cat([skips[k], self.up[k](x)], dim=1))
            if k < 3:
                outputs[k] = self.heads[k](x)
        return outputs[0], outputs[1], outputs[2]


class Refiner(nn.Module):
    """Input (N, 4, Y, X): image, initial result, fg seeds, bg seeds; Y, X divisible by 8."""

    GUIDES = 3  # initial result, fg seeds, bg seeds

    def __init__(self, base: int = 16):
        super().__init__()
        w = [base, base * 2, base * 4, base * 8]
        g = self.GUIDES
        self.enc0 = _conv_block(2, 1 + g, w[0])
        self.enc1 = _conv_block(2, w[0] + g, w[1])
        self.enc2 = _conv_block(2, w[1] + g, w[2])
        self.enc3 = _conv_block(2, w[2], w[3])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(w[k + 1], w[k], 2, stride=2) for k in range(3))
        self.decode = nn.ModuleList(_conv_block(2, 2 * w[k] + g, w[k]) for k in range(3))
        self.head = nn.Conv2d(w[0], 2, 1)

    @staticmethod
    def _guides(x: torch.Tensor, factor: int) -> torch.Tensor:
        """The initial result (mean) and the seed maps (max) pooled by `factor`."""
        if factor == 1:
            return x[:, 1:]
        initial = F.avg_pool2d(x[:, 1:2], factor)
        seeds = F.max_pool2d(x[:, 2:], factor)
        return torch.cat([initial, seeds], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        guides = [self._guides(x, f) for f in (1, 2, 4)]
        e0 = self.enc0(x)
        e1 = self.enc1(torch.cat([self.pool(e0), guides[1]], dim=1))
        e2 = self.enc2(torch.cat([self.pool(e1), guides[2]], dim=1))
        y = self.enc3(self.pool(e2))
        for k, skip in ((2, e2), (1, e1), (0, e0)):
            y = self.decode[k](torch.cat([skip, self.up[k](y), guides[k]], dim=1))
        return self.head(y)
