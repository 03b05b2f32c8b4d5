"""Image-specific fine-tuning of BIFSeg (Wang et al. 2018, sec. II-C/D), unsupervised or with
scribbles, on one box crop.

Everything happens on the network's grid (the box crop resized to the input size, see
models/bifseg_io.py), where the stored features of blocks 1-5 live:

    Y0 = argmax of the network's output
    repeat `alternations` times:
        label update (eq. 6-7): graph cut of -log p (eq. 3-4) + lamb * eq. 2, with scribbles
            as hard constraints (medseg.algorithms.graphcut.graph_cut)
        network update (eq. 12): `iterations` SGD steps on block 6 only, on the stored
            features, with the weighted cross entropy of eq. 13
    a last label update with the adapted network gives the result.

Weights of eq. 13 (computed once per alternation, from the network's p before that update):
    w = omega on scribbles; 0 where t0 < p < t1 (network uncertainty) or, off the scribbles,
    where the geodesic distance to a foreground scribble is < epsilon and the label is
    background (or to a background scribble and the label is foreground); 1 elsewhere.
    `weighted=False` gives BIFSeg(-w): w = 1 everywhere.

Units. The geodesic distance to a scribble is computed on the grid's image normalised to
[0, 1] (1st..99th percentile of the crop) as the cheapest path's
    sum over its steps of |I(p) - I(q)|  +  (path length in grid voxels) / (longest grid side)
(`medseg.algorithms.geodesic.geodesic_distance_plus_length`, one raster scan). epsilon = 0.2
thus means "reachable while crossing intensity changes and distance that add up to 20 % of
the crop's intensity range / of the crop's size". Why the length term: with the intensity
term alone (`encodings.intensity_geodesic`) a homogeneous organ next to a scribble of similar
tissue lies entirely within epsilon, so all its voxels got weight 0 and block 6 learned to
erase the object (measured: Dice 0.8 -> 0 on two held-out organs); the paper's geodesic
distance [4] (GeoS) also blends the spatial distance in.
The pairwise term's distance d_ij is the grid spacing in mm
divided by the finest grid spacing (1 along the finest axis), so lamb keeps the paper's
per-pixel meaning whatever the crop's size. The loss is eq. 12 divided by the number of grid
voxels N (a mean), so the learning rate does not depend on the crop size.

Block 6 is adapted in NumPy (float32) with hand-derived gradients, so the server needs no
torch (models/block6.py has the forward pass): on features x (F, N), N grid voxels,
    hidden h = relu(W1 x + b1) (H, N), logits z = W2 h + b2 (2, N), d = z_1 - z_0,
    loss L = (1/N) sum_i w_i ce_i, ce_i = softplus(d_i) if y_i = 0 else softplus(-d_i)
(softplus(t) = log(1 + e^t) = -log-softmax, evaluated without overflow), and with
g = w * (sigmoid(d) - y) / N (N,), the derivative of L in d:
    dL/dW2 = [-1, 1]^T (h g)^T, dL/db2 = [-sum g, sum g],
    dA = (W2[1] - W2[0]) g^T * [h > 0] (H, N), dL/dW1 = dA x^T, dL/db1 = dA summed over voxels.
The step is torch.optim.SGD's with momentum (no dampening, no weight decay): buf = grad on the
first step, then buf = momentum * buf + grad; p -= lr * buf. tests/engine/test_finetune.py
checks losses and weights against torch autograd.

Cancellation and progress: `should_stop()` is called before every iteration and raises
FinetuneCancelled when it answers True, so a caller never gets a half-adapted result;
`progress(step, total, loss)` is called after every iteration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from medseg.algorithms.geodesic import geodesic_distance_plus_length
from medseg.algorithms.graphcut import graph_cut
from medseg.engine.params import FRACTION, LAMB, SIGMA, Range, check_params
from medseg.errors import plain
from medseg.models import block6


class FinetuneCancelled(Exception):
    """Raised when `should_stop()` answered True; carries the iterations done."""

    def __init__(self, step: int, total: int):
        super().__init__(f"fine-tuning cancelled after {step} of {total} iterations")
        self.step, self.total = step, total


@dataclass(frozen=True)
class FinetuneParams:
    """Defaults: the paper's 2D values (sec. III-B); `params_for(3)` gives sec. III-C's."""

    alternations: int = 4  # label update + network update pairs
    iterations: int = 20  # SGD steps on block 6 per network update
    lr: float = 1e-2
    momentum: float = 0.9  # SGD momentum, as the paper's training (Caffe SGD)
    lamb: float = 3.0  # pairwise weight of eq. 1/6
    sigma: float = 0.1  # intensity scale of eq. 2, on [0, 1] intensities
    t0: float = 0.2  # network-uncertain band t0 < p < t1 gets weight 0
    t1: float = 0.7
    epsilon: float = 0.2  # geodesic distance threshold (units: module doc)
    omega: float = 5.0  # weight of scribble voxels
    weighted: bool = True  # False: BIFSeg(-w), every weight 1
    seed: int = 0  # unused (kept for callers): the NumPy update involves no randomness

    def __post_init__(self) -> None:
        check_params(self, RANGES)
        if self.t0 > self.t1:
            raise ValueError(f"need t0 <= t1, got t0={plain(self.t0)}, t1={plain(self.t1)}")
        if self.momentum >= 1.0:  # the SGD buffer would grow without bound
            raise ValueError(f"momentum must be < 1, got {plain(self.momentum)}")

    @property
    def total_iterations(self) -> int:
        return self.alternations * self.iterations


# Why each bound: engine/params.py for the shared ones; the others here. The request's
# overrides (usecases/finetune.FinetuneOverrides) use the same ranges.
RANGES = {
    # one fine-tuning runs alternations x iterations SGD steps in a job: 20 x 200 = 4000
    # steps is minutes of work, 20x the paper's 80
    "alternations": Range(0, 20), "iterations": Range(0, 200),
    "lr": Range(0.0, 1.0, lo_open=True),  # beyond 1 the SGD on block 6 diverges
    "momentum": Range(0.0, 1.0),  # and < 1, see __post_init__
    "lamb": LAMB, "sigma": SIGMA, "t0": FRACTION, "t1": FRACTION,
    # distances are fractions of the crop's intensity range and size (module doc): 10 is
    # farther than any voxel of the crop
    "epsilon": Range(0.0, 10.0),
    "omega": Range(0.0, 1000.0),  # a scribble voxel weighing 1000 others decides alone
    "seed": Range(0, 2**32 - 1),
}

# The paper chose these "by a grid search with the training data". The same search for our
# P-Net (`python -m medseg_bench.bifseg --tune t0=0.1,0.2,0.3 --tune t1=0.6,0.7,0.8 --tune
# epsilon=0.1,0.2,0.3`: 48 slices of seen organs of the training volumes, supervised) ranked
# t1 = 0.6, epsilon = 0.3 first (mean Dice 87.55 against 86.35 with these), but on the
# validation volume's organs it gained only 0.3 points and on held-out organs it lost 0.1-1.0
# (docs/benchmarks.md), so the paper's values stay.
PARAMS_2D = FinetuneParams()
PARAMS_3D = FinetuneParams(lamb=10.0, t1=0.6)


def params_for(dims: int, **overrides) -> FinetuneParams:
    """The paper's defaults for 2D (P-Net) or 3D (PC-Net), with `overrides` applied."""
    return replace(PARAMS_2D if dims == 2 else PARAMS_3D, **overrides)


@dataclass
class FinetuneResult:
    mask: np.ndarray  # bool, grid shape: the last label update
    probability: np.ndarray  # float32, grid shape: the adapted network's foreground p
    weights: dict[str, np.ndarray]  # adapted block-6 weights (models/block6.py keys)
    losses: list[float] = field(default_factory=list)  # loss per iteration
    timings: dict[str, float] = field(default_factory=dict)  # s: geodesic, graphcut, network, total


def run_block6(weights: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    """Foreground probability (float32, grid shape) of block 6 with `weights` on `features`
    ((F, *grid) float32, the network's second output for one crop)."""
    return block6.probability(weights, features)


def scribble_distances(image_norm: np.ndarray, fg: np.ndarray | None, bg: np.ndarray | None):
    """(G(i, S_f), G(i, S_b)) float32 on the grid (units: module doc); +inf everywhere for an
    absent scribble set."""
    image_norm = np.asarray(image_norm, dtype=np.float32)
    out = []
    for seeds in (fg, bg):
        if seeds is None or not np.any(seeds):
            out.append(np.full(image_norm.shape, np.inf, dtype=np.float32))
        else:
            out.append(geodesic_distance_plus_length(
                image_norm, np.asarray(seeds, dtype=bool), (1.0,) * image_norm.ndim,
                length_weight=1.0 / max(image_norm.shape)))
    return out[0], out[1]


def loss_weights(prob: np.ndarray, labels: np.ndarray, fg: np.ndarray | None,
                 bg: np.ndarray | None, geo_fg: np.ndarray | None, geo_bg: np.ndarray | None,
                 params: FinetuneParams) -> np.ndarray:
    """w(i) of eq. 13 (float32, grid shape); all ones when params.weighted is False.

    prob: the network's foreground p; labels: the current label map Y (bool); fg / bg: scribble
    masks S_f / S_b (or None); geo_fg / geo_bg: geodesic distances to them (scribble_distances;
    needed when params.weighted).
    """
    if not params.weighted:
        return np.ones(np.shape(prob), dtype=np.float32)
    if geo_fg is None or geo_bg is None:
        raise ValueError("weighted loss needs the geodesic distances to the scribbles")
    shape = np.shape(prob)
    fg = np.zeros(shape, bool) if fg is None else np.asarray(fg, dtype=bool)
    bg = np.zeros(shape, bool) if bg is None else np.asarray(bg, dtype=bool)
    scribbled = fg | bg
    labels = np.asarray(labels, dtype=bool)
    uncertain_net = (prob > params.t0) & (prob < params.t1)  # U_p
    uncertain_scribble = ~scribbled & (((geo_fg < params.epsilon) & ~labels)
                                       | ((geo_bg < params.epsilon) & labels))  # U_s
    w = np.ones(shape, dtype=np.float32)
    w[uncertain_net | uncertain_scribble] = 0.0
    w[scribbled] = params.omega  # eq. 13 lists "i in S" first: scribbles always get omega
    return w


def weighted_loss(logits: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """Eq. 12 / N: -(1/N) sum_i w_i (y_i log p_i + (1 - y_i) log(1 - p_i)), p = softmax(logits)[1].

    logits (2, ...) float; labels (...) bool; weights (...) float (any same spatial shape);
    computed in the logits' precision. -log-softmax of the true class is softplus(-+(z_1 - z_0)),
    evaluated without overflow."""
    d = np.asarray(logits[1]) - np.asarray(logits[0])
    ce = np.logaddexp(np.zeros((), d.dtype), np.where(labels, -d, d))
    return float(np.mean(np.asarray(weights, dtype=d.dtype) * ce))


def label_update(prob: np.ndarray, image_norm: np.ndarray, spacing, fg, bg,
                 params: FinetuneParams) -> np.ndarray:
    """Eq. 6-7 by graph cut: bool labels with every scribble voxel keeping its label."""
    return graph_cut(prob, image_norm, spacing, hard_fg=fg, hard_bg=bg, lamb=params.lamb,
                     sigma=params.sigma)


def _check(features, image_norm, fg, bg) -> None:
    grid = np.shape(image_norm)
    if np.ndim(image_norm) not in (2, 3) or np.shape(features)[1:] != grid:
        raise ValueError(f"features {np.shape(features)} must be (F, *{grid}) of a 2D/3D grid")
    for name, s in (("fg", fg), ("bg", bg)):
        if s is not None and np.shape(s) != grid:
            raise ValueError(f"{name} scribbles {np.shape(s)} must have the grid shape {grid}")


def _gradients(matrices: list[np.ndarray], x: np.ndarray, hidden: np.ndarray,
               logits: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> list[np.ndarray]:
    """dL/d[W1, b1, W2, b2] of weighted_loss (derivation: module doc), same shapes as
    `matrices` (block6.to_matrices); x (F, N), hidden (H, N), logits (2, N) of block6.forward
    on x; labels (N,) bool; weights (N,) float32."""
    w2 = matrices[2]
    g = weights * (block6.sigmoid(logits[1] - logits[0]) - labels) / np.float32(len(labels))
    d_w2_row = hidden @ g  # (H,): d/dW2[1]; W2[0] gets its negative (softmax of 2 classes)
    d_hidden = np.outer(w2[1] - w2[0], g)  # (H, N)
    d_hidden *= hidden > 0  # through the ReLU
    g_sum = g.sum()
    return [d_hidden @ x.T, d_hidden.sum(axis=1), np.stack([-d_w2_row, d_w2_row]),
            np.stack([-g_sum, g_sum])]


class _Sgd:
    """SGD with momentum, torch.optim.SGD's update (buf = grad on the first step, then
    buf = momentum * buf + grad; p -= lr * buf), in place on float32 arrays."""

    def __init__(self, parameters: list[np.ndarray], lr: float, momentum: float):
        self.parameters, self.lr, self.momentum = parameters, np.float32(lr), np.float32(momentum)
        self.buffers: list[np.ndarray | None] = [None] * len(parameters)

    def __call__(self, gradients: list[np.ndarray]) -> None:
        for k, (p, grad) in enumerate(zip(self.parameters, gradients)):
            buf = self.buffers[k]
            if buf is None:
                self.buffers[k] = buf = grad.astype(np.float32, copy=True)
            else:
                buf *= self.momentum
                buf += grad
            p -= self.lr * buf


def finetune(features: np.ndarray, image_norm: np.ndarray, weights: dict[str, np.ndarray],
             fg: np.ndarray | None = None, bg: np.ndarray | None = None,
             spacing=None, params: FinetuneParams = PARAMS_2D,
             progress: Callable[[int, int, float], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> FinetuneResult:
    """Adapt block 6 to one image and return the refined segmentation (module doc).

    features: (F, *grid) float32, the network's second output for the crop.
    image_norm: (*grid) float32, the crop resized to the grid and normalised to [0, 1].
    weights: starting block-6 weights (the trained ones, or a segment's adapted ones).
    fg / bg: optional bool (*grid) scribbles (None or empty: unsupervised).
    spacing: relative grid spacing per axis for d_ij (None: isotropic 1).
    """
    _check(features, image_norm, fg, bg)
    started = time.perf_counter()
    fg = None if fg is None or not np.any(fg) else np.asarray(fg, dtype=bool)
    bg = None if bg is None or not np.any(bg) else np.asarray(bg, dtype=bool)
    if fg is not None and bg is not None:
        bg = bg & ~fg  # a voxel marked both ways counts as foreground (as graph_cut does)
    spacing = tuple(spacing) if spacing is not None else (1.0,) * np.ndim(image_norm)
    matrices = block6.to_matrices(weights)  # copies: the caller's weights stay as they are
    step = _Sgd(matrices, params.lr, params.momentum)
    x = np.ascontiguousarray(features, dtype=np.float32).reshape(len(features), -1)  # (F, N)
    grid = np.shape(image_norm)
    timings = {"geodesic": 0.0, "graphcut": 0.0, "network": 0.0}
    t = time.perf_counter()
    geo_fg, geo_bg = scribble_distances(image_norm, fg, bg) if params.weighted else (None, None)
    timings["geodesic"] = time.perf_counter() - t
    losses: list[float] = []
    total = params.total_iterations

    def probability() -> np.ndarray:
        _, logits = block6.forward(matrices, x)
        return block6.sigmoid(logits[1] - logits[0]).reshape(grid)

    prob = probability()
    for _ in range(params.alternations):
        t = time.perf_counter()
        labels = label_update(prob, image_norm, spacing, fg, bg, params)
        timings["graphcut"] += time.perf_counter() - t
        t = time.perf_counter()
        w = loss_weights(prob, labels, fg, bg, geo_fg, geo_bg, params)
        y, wt = labels.reshape(-1), w.reshape(-1)
        for _ in range(params.iterations):
            if should_stop is not None and should_stop():
                raise FinetuneCancelled(len(losses), total)
            hidden, logits = block6.forward(matrices, x)
            losses.append(weighted_loss(logits, y, wt))
            step(_gradients(matrices, x, hidden, logits, y, wt))
            if progress is not None:
                progress(len(losses), total, losses[-1])
        prob = probability()
        timings["network"] += time.perf_counter() - t
    t = time.perf_counter()
    labels = label_update(prob, image_norm, spacing, fg, bg, params)
    timings["graphcut"] += time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    adapted = block6.from_matrices(matrices, np.ndim(weights["hidden.weight"]) - 2)
    return FinetuneResult(labels, prob.astype(np.float32), adapted, losses,
                          {k: round(v, 4) for k, v in timings.items()})
