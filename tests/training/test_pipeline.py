"""The training pipeline end to end on tiny data: samples, a few steps, ONNX export, card."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch

from medseg_train import cli, mideepseg
from medseg_train.data import (
    EXTRA_SETS,
    HELD_OUT_ORGANS,
    TRAIN_CASES,
    extra_evaluation_objects,
    extra_held_out_cases,
    load_case,
)
from medseg_train.objects import ObjectSampler
from medseg_train.synthetic import synthetic_case


@pytest.mark.parametrize("shape", [(1, 64, 64), (16, 48, 48)])
def test_synthetic_cases_hold_objects_inside_a_body(shape):
    case = synthetic_case(np.random.default_rng(0), shape)
    assert case.image.shape == case.labels.shape == shape
    assert case.image.dtype == np.float32 and np.isfinite(case.image).all()
    assert len(np.unique(case.labels)) >= 2
    again = synthetic_case(np.random.default_rng(0), shape)
    assert np.array_equal(case.labels, again.labels)  # deterministic for a seed


def test_held_out_organs_never_reach_training(totalseg):
    for name in TRAIN_CASES:
        seen = load_case(name).present(held_out=False)
        assert seen and not set(seen) & set(HELD_OUT_ORGANS)
    sampler = ObjectSampler(2, np.random.default_rng(0), synthetic_fraction=0.0)
    drawable = [o for case in sampler.cases for o in sampler.training_organs(case)]
    assert "stomach" in drawable and not set(drawable) & set(HELD_OUT_ORGANS)


@pytest.mark.parametrize("dims", [2, 3])
def test_the_extra_sets_keep_their_held_out_volumes_and_structures_out(totalseg, dims):
    """issue 13 item 5: the licensed sets train, their held-out scans and structures and the
    evaluation-only sets never do."""
    sampler = ObjectSampler(dims, np.random.default_rng(0), synthetic_fraction=0.0, extra=True)
    drawable = {c.name: set(sampler.training_organs(c)) for _, cases in sampler.sources
                for c in cases}
    held_cases = set(extra_held_out_cases())
    assert held_cases == {"mirp_sts/STS_003_ct", "mirp_sts/STS_003_t1"}
    assert not held_cases & set(drawable)
    assert "mirp_sts/STS_001_t1" in drawable and drawable["mirp_sts/STS_001_t1"] == {"GTV_Mass"}
    brain = drawable["voxelmorph_testscan/test_scan_t1"]
    assert "Brain-Stem" in brain and "Left-Hippocampus" not in brain and len(brain) > 20
    assert ("dcmqi_ct3slice/ct3slice_ct" in drawable) == (dims == 2)  # 3 slices: 2D only
    for organs in drawable.values():
        assert not organs & set(HELD_OUT_ORGANS)  # e.g. dcmqi's liver
    # what validation scores instead: exactly the held-out scans and structures
    held = {(c.name, o) for _, c, o in extra_evaluation_objects()}
    assert ("mirp_sts/STS_003_t1", "GTV_Mass") in held
    assert ("voxelmorph_testscan/test_scan_t1", "Right-Amygdala") in held
    assert not any(o in drawable.get(c, set()) for c, o in held)
    # the draws reach every source and follow the held-out rules
    seen_shapes = [sampler()[1].ndim for _ in range(40)]
    assert set(seen_shapes) == {dims}
    for name in ("deepmedic_brats2013/brats_2013_pat0001_1_flair", "mirp_nsclc/LUNG1-001_ct"):
        with pytest.raises(KeyError, match="not a case of a set licensed"):
            load_case(name)  # evaluation-only sets cannot be loaded for training
    assert {s.folder for s in EXTRA_SETS} == {"mirp_sts", "voxelmorph_testscan",
                                              "dcmqi_ct3slice"}


@pytest.mark.parametrize("dims", [2, 3])
def test_samples_pair_an_input_with_its_target(dims):
    batches = iter(mideepseg.Samples(dims, "egd", batch_size=2, seed=0, real=False))
    x, y = next(batches)
    size = mideepseg.INPUT_SIZE[dims]
    assert x.shape == (2, 2, *size) and y.shape == (2, *size) and y.dtype == torch.bool
    assert y.any() and (~y).any()
    cue_at_target = x[:, 1][y].mean()
    assert cue_at_target > x[:, 1][~y].mean()  # the cue map points at the object


def test_a_few_training_steps_export_a_model_and_its_card(tmp_path, capsys):
    cli.main(["mideepseg", "--dims", "2", "--steps", "2", "--batch-size", "2",
              "--synthetic-only", "--skip-validation", "--workers", "0", "--quiet",
              "--out", str(tmp_path), "--checkpoint-dir", str(tmp_path / "ckpt")])
    card = json.loads((tmp_path / "mideepseg-2d-egd.json").read_text())
    assert card["training"]["steps"] == 2 and card["input_size"] == [64, 64]
    assert card["training"]["held_out_organs"] == list(HELD_OUT_ORGANS)
    session = onnxruntime.InferenceSession(str(tmp_path / card["file"]),
                                           providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(3, 2, 64, 64)).astype(np.float32)
    (logits,) = session.run(None, {"input": x})
    assert logits.shape == (3, 2, 64, 64)  # dynamic batch axis
    assert card["training"]["onnx_max_abs_diff"] < 1e-3
