"""The editing-network recipe (issue 14): samples carry the image, the imperfect mask and the
paper's edit channels (one kind per sample); two steps export an ONNX model and its card; the
network-input contract maps marks onto its grid exactly."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import torch
from scipy import ndimage

from medseg.algorithms.editing import Edits
from medseg.models import editing_io
from medseg_train import cli, editing
from medseg_train.data import HELD_OUT_ORGANS
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
        # bit 1 (the weighted clicked errors) only where a selection click is
        assert target.max() <= 3 and (x[2].any() or not (target >= 2).any())
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


def _disc_object(shape=(80, 90), centre=(40, 45), radius=18) -> np.ndarray:
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def test_refused_edits_add_in_clear_background_or_remove_deep_inside():
    """The paper's robustness samples (sec. 3.3): an add mark lies 4-24 mm outside the object
    (spacing counts), a remove mark in the deeper half of it; one tool per edit."""
    gt = _disc_object()
    spacing = (1.5, 1.0)
    outside = ndimage.distance_transform_edt(~gt, sampling=spacing)
    inside = ndimage.distance_transform_edt(gt)
    tools = set()
    for seed in range(60):
        rng = np.random.default_rng(seed)
        add = seed % 2 == 0
        edits = editing.refused_edit(gt, gt, spacing, rng, add=add)
        assert edits is not None and edits.k == 0.0
        assert len(edits.kinds()) == 1
        tools |= edits.kinds()
        marks = [edits.select_add, edits.brush_add] if add else \
            [edits.select_remove, edits.brush_remove]
        other = [edits.select_remove, edits.brush_remove] if add else \
            [edits.select_add, edits.brush_add]
        points = np.concatenate(marks)
        assert len(points) >= 1 and all(len(o) == 0 for o in other)
        if add:
            assert outside[tuple(points.T)].min() >= 2.0 and outside[tuple(points.T)].max() <= 26
            assert outside[tuple(edits.select_add.T)].min(initial=99) >= 4.0
        else:
            assert gt[tuple(points.T)].all()
            assert inside[tuple(edits.select_remove.T)].min(initial=99) >= 0.5 * inside.max()
    assert tools == {"select", "brush"}
    # a sliver has no "deep inside": no sample rather than a remove mark on its edge
    sliver = np.zeros((40, 40), bool)
    sliver[20:22, 5:35] = True
    assert editing.refused_edit(sliver, sliver, (1.0, 1.0), np.random.default_rng(0),
                                add=False) is None


def test_refuse_samples_target_the_reference():
    """A refuse sample's target is the reference however wrong its marks are."""
    rng = np.random.default_rng(5)
    objects = Objects(rng, real=False)
    weights = dict(editing.KIND_WEIGHTS)
    try:
        editing.KIND_WEIGHTS.clear()
        editing.KIND_WEIGHTS.update({"refuse": 1.0})
        made = 0
        while made < 10:
            image, mask, spacing = objects()
            sample = editing.make_sample(image, mask, spacing, rng)
            if sample is None:
                continue
            made += 1
            x, target = sample
            assert (x[2] != 0).any() or (x[3] != 0).any()
            assert x[4, 0, 0] == 0 and target.any()
    finally:
        editing.KIND_WEIGHTS.clear()
        editing.KIND_WEIGHTS.update(weights)


def test_extra_sets_never_hold_a_held_out_organ(totalseg):
    """dcmqi_ct3slice labels liver, vertebra and heart: the liver is a held-out organ of every
    card, so only the other two may train."""
    names = [name for name, *_ in editing.extra_objects("dcmqi_ct3slice", "ct3slice_ct")]
    assert names and not set(names) & set(HELD_OUT_ORGANS)
    assert any("heart" in n for n in names) and len(names) == 2
    for _, image, mask, spacing in editing.extra_objects("dcmqi_ct3slice", "ct3slice_ct"):
        assert image.shape == mask.shape and mask.sum() >= 50 and len(spacing) == 3


def test_select_samples_weight_the_clicked_error_components():
    """Bit 1 of a select sample's target marks the error components a click lands in, and the
    loss counts a mistake there SELECT_WEIGHT times more than one elsewhere."""
    gt = _disc_object()
    auto = gt.copy()
    auto[20:30, 40:50] = False  # a bite, clicked
    auto[5:9, 5:9] = True  # a false blob, not clicked
    edits = Edits(select_add=np.array([[24, 45]]))
    region = editing.clicked_errors(auto, gt, edits)
    assert np.array_equal(region, gt & ~auto)

    target = torch.zeros((1, 8, 8), dtype=torch.uint8)
    target[0, :4] = 1  # foreground top half, the network says background everywhere
    logits = torch.zeros((1, 2, 8, 8))
    logits[:, 0] = 2.0
    plain = float(editing.loss_fn(logits, target))
    weighted = target.clone()
    weighted[0, :4] |= 2
    assert float(editing.loss_fn(logits, weighted)) > plain
    weighted_background = target.clone()
    weighted_background[0, 4:] |= 2  # weighting what the network already has right
    assert float(editing.loss_fn(logits, weighted_background)) < plain
