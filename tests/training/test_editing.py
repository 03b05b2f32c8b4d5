"""The editing-network recipe (issue 14): samples carry the image, the imperfect mask and the
paper's edit channels (one kind per sample); two steps export an ONNX model and its card; the
network-input contract maps marks onto its grid exactly."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
from scipy import ndimage

from medseg.algorithms.editing import Edits
from medseg.models import editing_io
from medseg_train import cli, editing
from medseg_train.propagation import Objects


def test_samples_hold_image_mask_and_at_most_one_kind_of_edit():
    rng = np.random.default_rng(3)
    objects = Objects(rng, real=False)
    kinds = set()
    made = 0
    while made < 40:
        sample = editing.make_sample(*objects(), rng)
        if sample is None:
            continue
        made += 1
        x, target = sample
        assert x.shape == (5, *editing_io.INPUT_SIZE) and target.shape == editing_io.INPUT_SIZE
        assert set(np.unique(x[2])) <= {-1.0, 0.0, 1.0}
        assert set(np.unique(x[3])) <= {-1.0, 0.0, 1.0}
        assert np.ptp(x[4]) == 0 and abs(x[4, 0, 0]) <= 0.5  # K everywhere, truncated
        present = {name for name, on in (("select", x[2].any()), ("brush", x[3].any()),
                                         ("adjust", x[4, 0, 0] != 0)) if on}
        assert len(present) <= 1  # few edits: one kind per sample
        kinds |= present
    assert kinds == {"select", "brush", "adjust"}


def test_network_input_puts_the_marks_on_the_grid_cell_they_fall_in():
    image = np.random.default_rng(0).normal(size=(60, 80)).astype(np.float32)
    mask = np.zeros((60, 80), bool)
    mask[20:40, 30:50] = True
    edits = Edits(select_add=np.array([[25, 55]]), brush_remove=np.array([[30, 35], [30, 36]]),
                  k=0.2)
    x, crop = editing_io.network_input(image, mask, edits, (1.0, 1.0))
    cell = editing_io.to_grid(np.array([[25, 55]]), crop)[0]
    diamond = np.zeros(editing_io.INPUT_SIZE, bool)
    diamond[tuple(cell)] = True
    diamond = ndimage.binary_dilation(diamond, ndimage.generate_binary_structure(2, 1), 2)
    assert np.array_equal(x[2] == 1, diamond) and not (x[2] == -1).any()
    assert (x[3] == -1).any() and not (x[3] == 1).any() and np.all(x[4] == np.float32(0.2))
    assert 0.0 <= x[1].min() and x[1].max() <= 1.0 and x[1].max() == 1.0


def test_two_training_steps_export_a_model_and_its_card(tmp_path):
    cli.main(["editing", "--steps", "2", "--batch-size", "2", "--synthetic-only",
              "--skip-validation", "--workers", "0", "--quiet", "--out", str(tmp_path),
              "--checkpoint-dir", str(tmp_path / "ckpt")])
    card = json.loads((tmp_path / "editnet-2d.json").read_text())
    assert card["task"] == "editing" and card["training"]["steps"] == 2
    assert card["in_channels"] == 5 and card["inputs"][2:] == ["selection", "brush",
                                                               "adjustment"]
    session = onnxruntime.InferenceSession(str(tmp_path / card["file"]),
                                           providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": np.zeros((1, 5, *editing_io.INPUT_SIZE),
                                                     np.float32)})
    assert logits.shape == (1, 2, *editing_io.INPUT_SIZE)
