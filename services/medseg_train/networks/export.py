"""torch -> ONNX export, checked by running the exported file once in onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path,
                output_names: tuple[str, ...] = ("logits",), atol: float = 1e-3) -> float:
    """Write `model` (eval mode) to `path` with a dynamic batch axis; run the file in
    onnxruntime on `example` and return the largest absolute difference from torch (raises
    AssertionError above `atol`)."""
    import onnxruntime

    model = model.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(model, (example,), str(path), input_names=["input"],
                          output_names=list(output_names), opset_version=17, dynamo=False,
                          dynamic_axes={"input": batch, **{n: batch for n in output_names}})
        expected = model(example)
    expected = expected if isinstance(expected, tuple) else (expected,)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": example.numpy()})
    worst = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))
    if worst > atol:
        raise AssertionError(f"ONNX and torch outputs differ by {worst:.2e} (> {atol})")
    return worst


def load_onnx_weights(model: torch.nn.Module, path: Path) -> None:
    """Warm start: copy the initializers of an ONNX file that `export_onnx` wrote for the same
    network (torch names kept) into `model`. Raises KeyError naming any parameter or buffer
    the file lacks, ValueError on a shape mismatch."""
    import onnx
    from onnx import numpy_helper

    stored = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    state = model.state_dict()
    # batch norm's step counter is not a weight: an eval-mode export may leave it out
    missing = [k for k in state if k not in stored and not k.endswith("num_batches_tracked")]
    if missing:
        raise KeyError(f"{path}: no initializer for {', '.join(missing[:5])}: not this network")
    for key, value in state.items():
        if key in stored and tuple(stored[key].shape) != tuple(value.shape):
            raise ValueError(f"{path}: {key} has shape {stored[key].shape}, "
                             f"the network wants {tuple(value.shape)}")
    model.load_state_dict({k: torch.from_numpy(stored[k].copy()) if k in stored else v
                           for k, v in state.items()})
