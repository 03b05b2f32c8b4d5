"""The propagation network's slice predictor: ONNX agrees with torch, it follows a held-out
organ of a real CT from one slice to the next, and it stops past the organ's end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from medseg.engine import propagation_net
from medseg.models.export import export_onnx
from medseg.models.propagation_io import INPUT_SIZE
from medseg.training import propagation
from medseg.training.data import load_case
from medseg.training.objects import largest_component


@pytest.fixture(scope="module")
def ct(totalseg):
    return load_case("ct_3mm")


def organ(case, name):
    mask = largest_component(case.mask(name))
    areas = mask.sum(axis=(1, 2))
    return mask, int(np.argmax(areas)), np.flatnonzero(areas)


def test_onnx_predictor_agrees_with_the_torch_model(ct, tmp_path):
    torch.manual_seed(0)
    model = propagation.build_network().eval()
    path = tmp_path / "net.onnx"
    export_onnx(model, torch.randn(1, 2, *INPUT_SIZE), path)
    session = propagation_net.load_session(str(path))
    mask, middle, _ = organ(ct, "spleen")
    args = (ct.image[middle + 1], mask[middle], ct.spacing[1:])
    onnx_prob = propagation_net.predict(*args, session=session)
    torch_prob = propagation.torch_predictor(model)(*args)
    assert onnx_prob.shape == ct.image.shape[1:] and onnx_prob.dtype == np.float32
    assert np.abs(onnx_prob - torch_prob).max() < 1e-3


@pytest.mark.parametrize(("name", "floor"), [("spleen", 0.85), ("kidney_left", 0.8)])
def test_the_committed_network_follows_a_held_out_organ_to_the_next_slice(ct, name, floor):
    mask, middle, _ = organ(ct, name)
    for step in (1, -1):
        prob = propagation_net.predict(ct.image[middle + step], mask[middle], ct.spacing[1:])
        assert prob.min() >= 0 and prob.max() <= 1
        predicted = prob > 0.5
        assert propagation.dice(predicted, mask[middle + step]) > floor
        copy = propagation.dice(mask[middle], mask[middle + step])
        assert propagation.dice(predicted, mask[middle + step]) > copy - 0.05


@pytest.mark.parametrize("name", ["spleen", "kidney_left", "kidney_right"])
def test_the_prediction_past_the_organ_is_empty_or_tiny(ct, name):
    mask, middle, shown = organ(ct, name)
    for end, step in ((shown[-1], 1), (shown[0], -1)):
        beyond = end + step
        if not 0 <= beyond < len(mask):
            continue
        predicted = propagation_net.predict(ct.image[beyond], mask[end], ct.spacing[1:]) > 0.5
        start_area = mask[middle].sum()
        assert predicted.sum() <= propagation.STOP_AREA_FRACTION * start_area + 3


def test_bad_inputs_are_refused(ct, tmp_path):
    with pytest.raises(ValueError, match="non-empty prior"):
        propagation_net.predict(ct.image[10], np.zeros(ct.image.shape[1:], bool), (3.0, 3.0))
    with pytest.raises(FileNotFoundError, match="weights not found"):
        propagation_net.load_session(str(tmp_path / "missing.onnx"))
