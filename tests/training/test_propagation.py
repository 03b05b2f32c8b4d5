"""The propagation recipe on tiny budgets: slice choice, samples, one-shot loop, a 2-step run."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import torch

from medseg.algorithms.metrics import dice
from medseg.models.propagation_io import INPUT_SIZE
from medseg_train import cli, propagation
from medseg_train.data import HELD_OUT_ORGANS


def bar(z_extent=(3, 9), shape=(12, 20, 20)):
    mask = np.zeros(shape, dtype=bool)
    mask[z_extent[0]:z_extent[1], 5:15, 5:15] = True
    return mask


def test_priors_are_at_most_two_slices_away_and_stop_samples_have_empty_targets():
    mask, rng = bar(), np.random.default_rng(0)
    seen_stop = seen_inside = 0
    for _ in range(400):
        chosen = propagation.choose_slices(mask, rng)
        if chosen is None:
            continue
        t, p = chosen
        assert 1 <= abs(t - p) <= 2 and mask[p].any()
        if mask[t].any():
            seen_inside += 1
        else:  # a stop sample: the prior is the object's first or last slice
            assert p in (3, 8)
            seen_stop += 1
    expected_stops = 400 * propagation.STOP_FRACTION  # every stop draw is valid for this bar
    assert seen_inside > 200 and 0.6 * expected_stops < seen_stop < 1.4 * expected_stops


def test_held_out_organs_are_never_sampled(totalseg):
    objects = propagation.Objects(np.random.default_rng(0), real=True)
    names = {case.name for case, _ in objects.real}
    assert names == {"ct_3mm", "mr_3mm"}
    for case, mask in objects.real:
        held_out = [case.mask(o) for o in HELD_OUT_ORGANS if o in case.present()]
        assert not any((mask & h).any() for h in held_out)


def test_samples_pair_a_prior_channel_with_a_nearby_target():
    x, y = next(iter(propagation.Samples(batch_size=24, seed=0, real=False)))
    assert (
        x.shape == (24, 2, *INPUT_SIZE) and y.shape == (24, *INPUT_SIZE) and y.dtype == torch.bool
    )
    prior = x[:, 1] > 0.5
    assert prior.any(dim=(1, 2)).all()  # every sample has a prior
    # the prior is perturbed on purpose (rotation, scale, shift), yet the target lies largely
    # under it: far more than under a mask of the prior's size placed anywhere in the crop
    overlap = (prior & y).sum() / y.sum().clamp(min=1)
    chance = prior.float().mean()
    assert overlap > 0.35 and overlap > 3 * chance


def test_one_shot_follows_a_perfect_predictor_and_stops_past_the_object():
    mask = bar()
    image = mask.astype(np.float32)
    calls = []

    def oracle(image_slice, prior, spacing):
        calls.append(spacing)
        return image_slice  # the "image" is the mask itself

    out = propagation.one_shot(oracle, image, mask, (3.0, 1.0, 2.0))
    assert np.array_equal(out, mask)
    assert calls[0] == (1.0, 2.0) and len(calls) == 2 + 6 - 1  # one empty slice each way
    assert dice(out, mask) == 1.0


def test_two_training_steps_export_a_model_and_its_card(tmp_path):
    cli.main(
        [
            "propagation",
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--synthetic-only",
            "--skip-validation",
            "--workers",
            "0",
            "--quiet",
            "--out",
            str(tmp_path),
            "--checkpoint-dir",
            str(tmp_path / "ckpt"),
        ]
    )
    card = json.loads((tmp_path / "propnet-2d.json").read_text())
    assert card["task"] == "propagation" and card["training"]["steps"] == 2
    assert card["input_size"] == list(INPUT_SIZE) and card["training"]["prior_offsets"] == [
        -2,
        -1,
        1,
        2,
    ]
    session = onnxruntime.InferenceSession(
        str(tmp_path / card["file"]), providers=["CPUExecutionProvider"]
    )
    (logits,) = session.run(None, {"input": np.zeros((2, 2, *INPUT_SIZE), np.float32)})
    assert logits.shape == (2, 2, *INPUT_SIZE)
