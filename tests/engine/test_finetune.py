"""Image-specific fine-tuning (BIFSeg eq. 6-13): the weights of eq. 13 and the loss of eq. 12 on
a hand-made case, the label update's hard constraints, cancellation and progress, and the
NumPy network update against torch autograd (torch: dev dependency, imported by those tests)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medseg.engine.finetune import (
    PARAMS_2D,
    FinetuneCancelled,
    _gradients,
    _Sgd,
    finetune,
    label_update,
    loss_weights,
    params_for,
    run_block6,
    scribble_distances,
    weighted_loss,
)
from medseg.models.block6 import (
    BLOCK6_KEYS,
    forward,
    to_matrices,
    weights_from_bytes,
    weights_to_bytes,
)

# A 2 x 4 grid: foreground scribble at (0, 0), background scribble at (1, 2).
PROB = np.array([[0.90, 0.50, 0.10, 0.95], [0.80, 0.15, 0.05, 0.02]])
LABELS = np.array([[1, 1, 1, 1], [1, 0, 0, 0]], dtype=bool)
FG = np.array([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=bool)
BG = np.array([[0, 0, 0, 0], [0, 0, 1, 0]], dtype=bool)
GEO_FG = np.array([[0.0, 0.1, 0.5, 0.3], [0.1, 0.15, 0.6, 0.9]])
GEO_BG = np.array([[0.9, 0.3, 0.1, 0.5], [0.5, 0.25, 0.0, 0.1]])
# By hand with t0 = 0.2, t1 = 0.7, epsilon = 0.2, omega = 5:
#   (0,0) fg scribble: omega          (0,1) p = 0.5 in (t0, t1): U_p -> 0
#   (0,2) label fg, G(bg) = 0.1 < eps: U_s^b -> 0      (0,3) confident, far: 1
#   (1,0) label fg near the fg scribble: agrees -> 1   (1,1) label bg, G(fg) = 0.15: U_s^f -> 0
#   (1,2) bg scribble: omega          (1,3) label bg near the bg scribble: agrees -> 1
EXPECTED_W = np.array([[5, 0, 0, 1], [1, 0, 5, 1]], dtype=np.float32)


def _logits(prob: np.ndarray) -> np.ndarray:
    return np.stack([np.log(1 - prob), np.log(prob)]).astype(np.float32)


def test_weights_follow_eq_13_on_a_hand_made_case():
    w = loss_weights(PROB, LABELS, FG, BG, GEO_FG, GEO_BG, PARAMS_2D)
    assert np.array_equal(w, EXPECTED_W)


def test_weighted_loss_is_eq_12_over_the_voxel_count():
    w = loss_weights(PROB, LABELS, FG, BG, GEO_FG, GEO_BG, PARAMS_2D)
    loss = weighted_loss(_logits(PROB), LABELS, w)
    by_hand = -(5 * np.log(0.9) + np.log(0.95) + np.log(0.8) + 5 * np.log(0.95) + np.log(0.98)) / 8
    assert float(loss) == pytest.approx(by_hand, rel=1e-5)


def test_bifseg_minus_w_weights_every_voxel_one():
    params = params_for(2, weighted=False)
    w = loss_weights(PROB, LABELS, FG, BG, GEO_FG, GEO_BG, params)
    assert np.array_equal(w, np.ones_like(w))
    loss = weighted_loss(_logits(PROB), LABELS, w)
    by_hand = -np.log([0.9, 0.5, 0.1, 0.95, 0.8, 0.85, 0.95, 0.98]).sum() / 8
    assert float(loss) == pytest.approx(by_hand, rel=1e-5)


def test_geodesic_uncertainty_is_near_the_scribble_and_on_its_side_of_an_edge():
    """G = sum |dI| + path length / longest side: 0.2 reaches 8 voxels on a 40-voxel grid
    through flat intensity, and never across an edge of height 0.5."""
    image = np.zeros((40, 40), np.float32)
    image[:, 20:] = 0.5
    fg = np.zeros_like(image, dtype=bool)
    fg[20, 5:9] = True
    geo_fg, geo_bg = scribble_distances(image, fg, None)
    assert geo_fg[20, 12] == pytest.approx(4 / 40, abs=1e-3)  # 4 voxels along the row
    assert geo_fg[0, 0] > 0.2 and (geo_fg[:, 20:] > 0.5).all() and np.isinf(geo_bg).all()
    labels = np.zeros_like(fg)  # all labelled background: near the fg scribble is uncertain
    w = loss_weights(np.full(image.shape, 0.05), labels, fg, None, geo_fg, geo_bg, PARAMS_2D)
    near = (geo_fg < 0.2) & ~fg
    assert (w[fg] == 5).all() and (w[near] == 0).all() and (w[~near & ~fg] == 1).all()
    assert near[20, 12] and not near[0, 0] and not near[:, 20:].any()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lamb=st.sampled_from([0.0, 3.0, 10.0, 100.0]),
       dims=st.sampled_from([2, 3]))
def test_label_update_keeps_every_scribble_label(seed, lamb, dims):
    rng = np.random.default_rng(seed)
    shape = (12, 14) if dims == 2 else (4, 9, 10)
    prob = rng.random(shape)
    image = rng.random(shape).astype(np.float32)
    fg = rng.random(shape) < 0.1
    bg = (rng.random(shape) < 0.1) & ~fg
    labels = label_update(prob, image, (1.0,) * dims, fg, bg, params_for(dims, lamb=lamb))
    assert labels[fg].all() and not labels[bg].any()


def test_weighted_loss_is_finite_for_confident_logits():
    """|logit difference| of 200: exp overflows float32, softplus must not."""
    logits = np.array([[0.0, 0.0, 0.0], [200.0, -200.0, 200.0]], np.float32)
    loss = weighted_loss(logits, np.array([False, False, True]), np.ones(3, np.float32))
    assert loss == pytest.approx(200 / 3, rel=1e-6)


def _random_weights(rng, dims: int, features: int, hidden: int) -> dict[str, np.ndarray]:
    """Block-6 weights drawn as torch's default conv init (uniform, +-1/sqrt(fan in))."""
    ones = (1,) * dims
    u = lambda fan_in, *shape: rng.uniform(-1, 1, shape).astype(np.float32) / np.sqrt(fan_in)
    return {
        "hidden.weight": u(features, hidden, features, *ones),
        "hidden.bias": u(features, hidden),
        "out.weight": u(hidden, 2, hidden, *ones),
        "out.bias": u(hidden, 2),
    }


def _toy(seed=0, size=24, features=6):
    """A bright disc on a dark background; features carry the intensity so block 6 can learn."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2
    image = (0.2 + 0.6 * disc + rng.normal(0, 0.05, disc.shape)).astype(np.float32)
    feats = np.stack([image] + [rng.normal(0, 1, disc.shape) for _ in range(features - 1)])
    return disc, image, feats.astype(np.float32), _random_weights(rng, 2, features, 8)


def test_finetune_reports_progress_and_returns_storable_weights():
    disc, image, feats, weights = _toy()
    seen = []
    out = finetune(
        feats,
        image,
        weights,
        fg=disc & (np.arange(24) == 12)[:, None],
        bg=None,
        params=params_for(2, alternations=2, iterations=5),
        progress=lambda k, n, loss: seen.append((k, n, loss)),
    )
    assert [k for k, _, _ in seen] == list(range(1, 11)) and all(n == 10 for _, n, _ in seen)
    assert out.mask.shape == out.probability.shape == disc.shape and len(out.losses) == 10
    restored = weights_from_bytes(weights_to_bytes(out.weights))
    assert len(weights_to_bytes(out.weights)) < 20_000
    assert np.allclose(run_block6(restored, feats), out.probability, atol=1e-6)
    assert not all(np.array_equal(out.weights[k], weights[k]) for k in weights)  # it learned


def test_cancellation_stops_between_iterations():
    _, image, feats, weights = _toy()
    calls, progress = [], []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 7

    with pytest.raises(FinetuneCancelled) as info:
        finetune(
            feats,
            image,
            weights,
            params=PARAMS_2D,
            should_stop=stop,
            progress=lambda k, n, loss: progress.append(k),
        )
    assert info.value.step == 7 and info.value.total == 80 and progress == list(range(1, 8))


def test_bad_shapes_are_refused():
    disc, image, feats, weights = _toy()
    with pytest.raises(ValueError, match="features"):
        finetune(feats[:, :10], image, weights)
    with pytest.raises(ValueError, match="scribbles"):
        finetune(feats, image, weights, fg=disc[:10])
    with pytest.raises(ValueError, match="t0"):
        params_for(2, t0=0.8, t1=0.6)


def test_the_update_is_torch_sgd_with_momentum():
    import torch

    rng = np.random.default_rng(0)
    start = [rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=4).astype(np.float32)]
    ours = [p.copy() for p in start]
    reference = [torch.tensor(p, requires_grad=True) for p in start]
    sgd, torch_sgd = _Sgd(ours, 1e-2, 0.9), torch.optim.SGD(reference, lr=1e-2, momentum=0.9)
    for _ in range(4):
        grads = [rng.normal(size=p.shape).astype(np.float32) for p in start]
        sgd(grads)
        for p, g in zip(reference, grads):
            p.grad = torch.from_numpy(g)
        torch_sgd.step()
    assert all(np.allclose(p, q.detach().numpy(), atol=1e-6) for p, q in zip(ours, reference))


def test_gradients_match_finite_differences():
    """dL/dW2[1, j] by central differences in float64, on a case small enough to be exact."""
    rng = np.random.default_rng(1)
    matrices = to_matrices(_random_weights(rng, 2, 3, 4))
    x = rng.normal(size=(3, 50)).astype(np.float32)
    y, w = rng.random(50) < 0.5, rng.choice([0.0, 1.0, 5.0], 50).astype(np.float32)
    grads = _gradients(matrices, x, *forward(matrices, x), y, w)

    def loss(m):
        return weighted_loss(
            forward([a.astype(np.float64) for a in m], x.astype(np.float64))[1], y, w
        )

    for key, (k, index) in {
        "hidden.weight": (0, (1, 2)),
        "hidden.bias": (1, (3,)),
        "out.weight": (2, (1, 0)),
        "out.bias": (3, (0,)),
    }.items():
        up, down = (
            [m.astype(np.float64) for m in matrices],
            [m.astype(np.float64) for m in matrices],
        )
        up[k][index] += 1e-4
        down[k][index] -= 1e-4
        numeric = (loss(up) - loss(down)) / 2e-4
        assert grads[k][index] == pytest.approx(numeric, rel=1e-3, abs=1e-6), key


@pytest.mark.parametrize("dims", [2, 3])
def test_numpy_finetuning_matches_torch_autograd(dims):
    """finetune's SGD steps against the same steps in torch: the torch Block6 convolutions,
    autograd of the weighted cross entropy, the same momentum rule (buf = grad first)."""
    import torch

    from medseg_train.networks.block6 import Block6

    rng = np.random.default_rng(dims)
    grid = (20, 24) if dims == 2 else (6, 10, 12)
    features = rng.normal(size=(7, *grid)).astype(np.float32)
    weights = _random_weights(rng, dims, 7, 5)
    weights["out.weight"] *= 8  # spread p over (0, 1): loss weights 0, 1 and omega all occur
    image = rng.random(grid).astype(np.float32)
    fg, bg = np.zeros(grid, bool), np.zeros(grid, bool)
    fg[(slice(2, 4),) * dims], bg[(slice(-3, -1),) * dims] = True, True
    params = params_for(dims, alternations=1, iterations=5, lr=0.1)
    out = finetune(features, image, weights, fg, bg, params=params)

    prob = run_block6(weights, features)  # the one label update and weights finetune used
    labels = label_update(prob, image, (1.0,) * dims, fg, bg, params)
    w = loss_weights(prob, labels, fg, bg, *scribble_distances(image, fg, bg), params)
    assert {0.0, 1.0, params.omega} <= set(np.unique(w).tolist())
    block = Block6.from_weights(weights)
    x, y, wt = torch.from_numpy(features)[None], torch.from_numpy(labels), torch.from_numpy(w)
    buffers, losses = {}, []
    for _ in range(params.iterations):
        log_p = torch.log_softmax(block(x)[0], dim=0)
        loss = -(wt * torch.where(y, log_p[1], log_p[0])).mean()
        block.zero_grad()
        loss.backward()
        with torch.no_grad():
            for name, p in block.named_parameters():
                buf = buffers.get(name)
                buffers[name] = buf = (
                    p.grad.clone() if buf is None else params.momentum * buf + p.grad
                )
                p -= params.lr * buf
        losses.append(loss.item())
    reference = block.weights()

    assert np.allclose(out.losses, losses, rtol=1e-5, atol=0)
    assert losses[-1] < 0.9 * losses[0]  # the steps are large enough to matter
    for key in BLOCK6_KEYS:
        assert out.weights[key].shape == weights[key].shape and out.weights[key].dtype == np.float32
        moved = reference[key] - weights[key]  # compare the change, not only the sum
        error = np.abs(out.weights[key] - reference[key]).max()
        assert error <= 1e-5 * np.abs(moved).max() + 1e-7, (key, error, np.abs(moved).max())


def test_the_server_side_needs_no_torch():
    """The whole server (every built-in plug-in, the API, the worker, the fine-tuning job)
    imports and is wired with torch unavailable."""
    code = (
        "import sys; sys.modules['torch'] = None; import medseg.engine.finetune, "
        "medseg.usecases.finetune, medseg.worker, medseg.main, medseg.api.app, "
        "medseg.builtin; medseg.builtin.build()"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
