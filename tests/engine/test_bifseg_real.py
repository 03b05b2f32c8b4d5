"""BIFSeg with the committed P-Net on held-out organs of the shared data (never trained on):
the box-only result, and supervised fine-tuning against graph-cut-only refinement with the
same simulated scribbles (the benchmark's protocol, medseg_bench.bifseg)."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.algorithms.metrics import dice
from medseg.engine.bifseg import BoxCrop, run_network
from medseg.engine.bifseg_method import load_network
from medseg.engine.finetune import finetune, label_update, params_for, run_block6
from medseg.models.bifseg_io import mask_box
from medseg_bench.bifseg import simulate_scribble
from medseg_train.data import load_case
from medseg_train.objects import largest_component


@pytest.fixture(scope="module")
def pnet():
    """The committed P-Net through the model loader (verified against its card)."""
    return load_network(2)


def _slice(case_name: str, organ: str):
    case = load_case(case_name)
    mask = largest_component(case.mask(organ))
    z = int(np.argmax(mask.sum(axis=(1, 2))))
    return case.image[z], largest_component(mask[z]), case.spacing[1:]


@pytest.mark.parametrize(("case_name", "organ", "floor"), [
    ("ct_3mm", "kidney_left", 0.85), ("ct_dicom", "liver", 0.85), ("mr_3mm", "liver", 0.8)])
def test_box_only_result_on_held_out_organs(totalseg, pnet, case_name, organ, floor):
    image, truth, spacing = _slice(case_name, organ)
    crop = BoxCrop.around(image.shape, *mask_box(truth), spacing)
    state = run_network(pnet.session, image, crop)
    assert dice(crop.to_image(state.probability > 0.5, image.shape), truth) >= floor
    # the stored features with the trained block 6 reproduce the network's output
    assert np.allclose(run_block6(pnet.block6, state.features), state.probability, atol=1e-4)


@pytest.mark.parametrize(("case_name", "organ"), [("ct_dicom", "spleen"), ("ct_3mm", "liver")])
def test_supervised_finetuning_is_at_least_as_good_as_graph_cut_only(totalseg, pnet,
                                                                     case_name, organ):
    image, truth, spacing = _slice(case_name, organ)
    crop = BoxCrop.around(image.shape, *mask_box(truth), spacing)
    state = run_network(pnet.session, image, crop)
    initial = crop.to_image(state.probability > 0.5, image.shape)
    fv, bv = simulate_scribble(truth & ~initial, 2), simulate_scribble(initial & ~truth, 2)
    assert len(fv) + len(bv) > 0
    fg, bg = crop.marks_to_grid(fv), crop.marks_to_grid(bv)
    params = params_for(2, seed=0)
    crf = label_update(state.probability, state.image_norm, crop.grid_spacing, fg, bg, params)
    crf_dice = dice(crop.to_image(crf, image.shape, fv, bv), truth)
    out = finetune(state.features, state.image_norm, pnet.block6, fg, bg,
                   crop.grid_spacing, params)
    tuned = dice(crop.to_image(out.mask, image.shape, fv, bv), truth)
    assert tuned >= crf_dice - 0.005, (tuned, crf_dice)


def test_pcnet_box_and_finetuning_run_in_3d(totalseg):
    """The 3D path end to end (shapes, scribbles kept, weights storable); accuracy is in the
    benchmark, not asserted here."""
    pcnet = load_network(3)
    case = load_case("ct_3mm")
    truth = largest_component(case.mask("kidney_left"))
    crop = BoxCrop.around(truth.shape, *mask_box(truth), case.spacing)
    state = run_network(pcnet.session, case.image, crop)
    assert state.features.shape[1:] == state.probability.shape == crop.grid
    centre = np.argwhere(truth).mean(axis=0).astype(int)
    fv, bv = centre[None], np.array(crop.lo)[None]
    out = finetune(state.features, state.image_norm, pcnet.block6, crop.marks_to_grid(fv),
                   crop.marks_to_grid(bv), crop.grid_spacing,
                   params_for(3, alternations=1, iterations=2))
    mask = crop.to_image(out.mask, truth.shape, fv, bv)
    assert mask[tuple(centre)] and not mask[crop.lo] and len(out.losses) == 2
    assert np.allclose(run_block6(out.weights, state.features), out.probability, atol=1e-5)
