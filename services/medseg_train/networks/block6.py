"""Block 6 of P-Net / PC-Net as a torch module, for training: the classifier on the concatenated
features of blocks 1-5, two 1x1 (x1) convolutions with a ReLU between them. It is the only
part image-specific fine-tuning updates (BIFSeg sec. II-A).

Its weights' format (BLOCK6_KEYS, `<model>.block6.npz`), the NumPy forward pass the server
uses and the storage helpers live in the server's torch-free medseg/models/block6.py;
`weights_from_onnx` checks that the .npz and the ONNX file agree.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from medseg.models.block6 import BLOCK6_KEYS, to_matrices


class Block6(nn.Module):
    """features (N, F, *spatial) -> logits (N, 2, *spatial); dims 2 or 3."""

    def __init__(self, dims: int, features: int, hidden: int):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.dims = dims
        self.hidden = conv(features, hidden, 1)
        self.out = conv(hidden, 2, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(features)))

    def weights(self) -> dict[str, np.ndarray]:
        """The weights as float32 arrays keyed by BLOCK6_KEYS (copies)."""
        state = self.state_dict()
        return {k: state[k].detach().cpu().numpy().astype(np.float32).copy() for k in BLOCK6_KEYS}

    @classmethod
    def from_weights(cls, weights: dict[str, np.ndarray]) -> Block6:
        """A Block6 holding `weights` (a dict as `weights()` returns); ValueError when keys or
        shapes do not fit together."""
        w1 = to_matrices(weights)[0]  # checks keys and shapes
        block = cls(np.ndim(weights["hidden.weight"]) - 2, w1.shape[1], w1.shape[0])
        block.load_state_dict({k: torch.from_numpy(np.asarray(weights[k], dtype=np.float32))
                               for k in BLOCK6_KEYS})
        return block.eval()


def weights_from_onnx(path) -> dict[str, np.ndarray]:
    """Block-6 weights read from the initialisers of an exported P-Net / PC-Net ONNX file
    (the export keeps the torch parameter names `block6.hidden.weight`, ...)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    found = {init.name: init for init in model.graph.initializer}
    missing = [k for k in BLOCK6_KEYS if f"block6.{k}" not in found]
    if missing:
        raise ValueError(f"{path}: no block-6 initialisers {missing}")
    return {k: numpy_helper.to_array(found[f"block6.{k}"]).astype(np.float32) for k in BLOCK6_KEYS}
