"""The `bifseg` method on its own: a 2D box on a held-out organ with the committed P-Net, the
NumPy block 6 against torch's, adapted weights changing the result, the 3D path on a small
untrained PC-Net, and the errors a client sees."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.algorithms.metrics import dice
from medseg.engine import bifseg_method as bm
from medseg.engine.finetune import run_block6
from medseg.engine.method import SegmentContext
from medseg.engine.prompts import Box, Marks, Plane
from medseg.errors import InvalidPrompt, ModelUnavailable
from medseg.models.bifseg_io import INPUT_SIZE, mask_box
from medseg.models.block6 import weights_to_bytes
from medseg_train.data import load_case
from medseg_train.networks.block6 import Block6
from medseg_train.objects import largest_component
from tests.models.tiny import write_tiny_pcnet


@pytest.fixture(scope="module")
def spleen(totalseg):
    case = load_case("ct_3mm")
    mask = largest_component(case.mask("spleen"))
    z = int(np.argmax(mask.sum(axis=(1, 2))))
    lo, hi = mask_box(mask[z])
    box = Box((z, int(lo[0]), int(lo[1])), (z, int(hi[0]), int(hi[1])))
    return case, mask, z, box


def _reader(image):
    return lambda b: image[tuple(slice(a, c + 1) for a, c in zip(b.lo, b.hi))]


def _paste(shape, result):
    out = np.zeros(shape, dtype=bool)
    out[tuple(slice(a, c + 1) for a, c in zip(result.roi.lo, result.roi.hi))] = result.mask
    return out


def test_2d_box_on_a_held_out_organ(spleen):
    case, mask, z, box = spleen
    result = bm.segment(_reader(case.image), None, case.image.shape, case.spacing,
                        Marks(boxes=[box]), Plane(0, z))
    assert result.roi.lo[0] == result.roi.hi[0] == z
    assert result.mask.shape == result.probability.shape
    assert dice(_paste(case.image.shape, result)[z], largest_component(mask[z])) >= 0.82
    # the probability is the network's (resized separately from the mask: edges may differ)
    assert ((result.probability > 0.5) == result.mask).mean() > 0.97


def test_numpy_block6_matches_torch_and_adapted_weights_are_used(spleen):
    case, _, z, box = spleen
    run = bm.run_box(_reader(case.image), case.image.shape, case.spacing, box, Plane(0, z))
    trained = run.network.block6
    with torch.no_grad():
        logits = Block6.from_weights(trained)(torch.from_numpy(run.state.features)[None])
    assert np.allclose(bm.block6_probability(trained, run.state.features),
                       torch.softmax(logits, dim=1)[0, 1].numpy(), atol=1e-5)
    assert np.array_equal(bm.block6_probability(trained, run.state.features),
                          run_block6(trained, run.state.features))  # one implementation
    assert bm.weights_from_bytes(weights_to_bytes(trained)).keys() == trained.keys()
    shifted = {**trained, "out.bias": trained["out.bias"] + np.array([-3.0, 3.0], np.float32)}
    plain = bm.segment(_reader(case.image), None, case.image.shape, case.spacing,
                       Marks(boxes=[box]), Plane(0, z))
    adapted = bm.segment(_reader(case.image), None, case.image.shape, case.spacing,
                         Marks(boxes=[box]), Plane(0, z),
                         context=SegmentContext(artifact=lambda name: weights_to_bytes(shifted)
                                                if name == bm.adapted_block6_name(2) else None))
    assert adapted.mask.sum() > plain.mask.sum()  # a foreground bias grows the object


def test_3d_box_on_an_untrained_pcnet(tmp_path, spleen, monkeypatch):
    case, mask, _, _ = spleen
    write_tiny_pcnet(tmp_path)
    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(tmp_path))
    lo, hi = mask_box(mask)
    box = Box(tuple(int(v) for v in lo), tuple(int(v) for v in hi))
    run = bm.run_box(_reader(case.image), case.image.shape, case.spacing, box, None, 2)
    assert run.dims == 3 and run.state.features.shape == (10, *INPUT_SIZE[3])
    assert run.roi.lo == tuple(max(v - 2, 0) for v in box.lo)
    assert run.to_roi(run.state.probability).shape == tuple(
        b - a + 1 for a, b in zip(run.roi.lo, run.roi.hi)
    )
    assert np.allclose(
        bm.block6_probability(run.network.block6, run.state.features),
        run.state.probability,
        atol=1e-4,
    )


def test_errors(spleen, tmp_path, monkeypatch):
    case, _, z, box = spleen
    with pytest.raises(InvalidPrompt, match="needs a box"):
        bm.segment(
            _reader(case.image),
            None,
            case.image.shape,
            case.spacing,
            Marks(fg=np.array([[z, 30, 30]])),
            Plane(0, z),
        )
    with pytest.raises(InvalidPrompt, match="not on the 2D plane"):
        bm.segment(
            _reader(case.image),
            None,
            case.image.shape,
            case.spacing,
            Marks(boxes=[box]),
            Plane(0, z + 1),
        )
    monkeypatch.setenv("MEDSEG_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelUnavailable, match="no 3D bifseg model"):
        bm.load_network(3)


def test_fractional_spacing_gives_a_finite_grid_spacing(spleen):
    case, _, z, box = spleen
    run = bm.run_box(_reader(case.image), case.image.shape, (1.5, 0.8, 0.7), box, Plane(0, z))
    assert np.isfinite(run.state.crop.grid_spacing).all()
    assert min(run.state.crop.grid_spacing) == 1.0
