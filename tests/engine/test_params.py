"""Every parameter of every method, predictor and fine-tuning is finite and bounded, and the
request overrides are parsed strictly (issue 12: a NaN sigma froze the API process)."""

from __future__ import annotations

import dataclasses
import inspect
import io
import itertools
import math
import re
import tokenize
from dataclasses import dataclass

import numpy as np
import pytest

from medseg import builtin
from medseg.algorithms.graphcut import graph_cut
from medseg.engine.bifseg_method import BifsegParams
from medseg.engine.finetune import RANGES, FinetuneParams
from medseg.engine.graphcut_method import GraphCutParams
from medseg.engine.mideepseg_method import MIDeepSegParams
from medseg.engine.params import parse_dataclass_params
from medseg.engine.prompts import (
    Marks,
    check_polyline_budget,
    merge_marks,
    polyline_length,
    rasterize_polyline,
)
from medseg.engine.propagation import PropagationParams
from medseg.engine.propagation_net import FusedParams
from medseg.engine.slice_predictors import SeedGraphCutParams
from medseg.errors import InvalidPrompt, plain
from medseg.usecases.finetune import FinetuneOverrides

PARAMS = [GraphCutParams, MIDeepSegParams, BifsegParams, SeedGraphCutParams, FusedParams,
          PropagationParams, FinetuneParams]


def numeric_fields(params_type):
    defaults = params_type()
    return [(f.name, type(getattr(defaults, f.name))) for f in dataclasses.fields(params_type)
            if type(getattr(defaults, f.name)) in (int, float)]


@pytest.mark.parametrize("params_type", PARAMS, ids=lambda t: t.__name__)
def test_defaults_hold_and_no_float_may_be_nan_or_infinite(params_type):
    params_type()  # the defaults lie within the bounds
    for name, kind in numeric_fields(params_type):
        if kind is not float:
            continue
        for bad in (math.nan, math.inf, -math.inf):
            with pytest.raises(ValueError, match=name):
                params_type(**{name: bad})


@pytest.mark.parametrize("params_type", PARAMS, ids=lambda t: t.__name__)
def test_every_number_has_an_upper_bound(params_type):
    """1e15 is no sensible value for any of them (a voxel count, a margin, a weight)."""
    for name, kind in numeric_fields(params_type):
        with pytest.raises(ValueError, match=name):
            params_type(**{name: kind(10**15)})


@pytest.mark.parametrize("overrides, words", [
    ({"sigma": math.nan}, ["'sigma'", "finite", "NaN"]),
    ({"lamb": -math.inf}, ["'lamb'", "finite", "-Infinity"]),
    ({"coarse_voxels": math.inf}, ["'coarse_voxels'", "finite"]),  # int(inf): OverflowError
    ({"coarse_voxels": 2.5}, ["'coarse_voxels'", "whole number", "2.5"]),
    ({"lamb": "2"}, ["'lamb'", "number", "'2'"]),
    ({"lamb": True}, ["'lamb'", "number", "true"]),
    ({"lamb": [1]}, ["'lamb'", "a JSON list"]),
    ({"margin_mm": 1e300}, ["margin_mm", "<= 500", "1e+300"]),
    ({"smooth_mm": 170_000}, ["smooth_mm", "<= 10"]),
    ({"coarse_voxels": -5}, ["coarse_voxels", ">= 0"]),
])
def test_request_overrides_are_parsed_strictly(overrides, words):
    with pytest.raises(InvalidPrompt) as caught:
        parse_dataclass_params(GraphCutParams, overrides, "geodesic-graphcut")
    for word in words:
        assert word in caught.value.message, caught.value.message
    assert "np." not in caught.value.message


def test_whole_floats_are_accepted_for_int_fields():
    parsed = parse_dataclass_params(GraphCutParams, {"coarse_voxels": 5e5, "lamb": 3}, "m")
    assert parsed.coarse_voxels == 500_000 and isinstance(parsed.coarse_voxels, int)
    assert parsed.lamb == 3.0 and isinstance(parsed.lamb, float)


def test_finetune_overrides_match_the_engine_bounds():
    """The request model shows the engine's ranges in the contract; both must agree."""
    schema = FinetuneOverrides.model_json_schema(by_alias=False)["properties"]
    for name, allowed in RANGES.items():
        if name not in schema:
            continue
        bounds = next(s for s in schema[name]["anyOf"] if s["type"] != "null")
        assert bounds["maximum"] == allowed.hi
        low = "exclusiveMinimum" if allowed.lo_open else "minimum"
        assert bounds[low] == allowed.lo
    for bad in ({"lambda": math.inf}, {"sigma": math.nan}, {"omega": 1e9}, {"lr": 0}):
        with pytest.raises(ValueError):
            FinetuneOverrides.model_validate(bad)


def test_graph_cut_refuses_nan_instead_of_freezing():
    """PyMaxflow never finishes on a NaN capacity; the algorithm must fail at once."""
    prob = np.full((8, 8), 0.5, np.float32)
    prob[3, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        graph_cut(prob, np.zeros((8, 8), np.float32), (1.0, 1.0))
    with pytest.raises(ValueError, match="finite"):
        graph_cut(np.full((8, 8), 0.5), np.zeros((8, 8)), (1.0, 1.0), sigma=math.nan)


def test_plain_numbers():
    assert plain(np.float64(-249.5)) == "-249.5"
    assert plain(np.array([1.5, 2.0])) == "[1.5, 2]"
    assert plain((np.int64(3), 4)) == "[3, 4]"
    assert plain(1e12) == "1e+12" and plain(math.nan) == "NaN"


# -- scribbles: their cost is known before they are rasterised ------------------------------
def reference_raster(points: np.ndarray) -> tuple[np.ndarray, int]:
    """The former per-segment loop: (unique voxels, voxels visited with repeats)."""
    pieces = []
    for a, b in itertools.pairwise(points):
        t = np.linspace(0.0, 1.0, int(np.abs(b - a).max()) + 1)[:, None]
        pieces.append(np.rint(a + t * (b - a)).astype(np.int64))
    return np.unique(np.concatenate(pieces), axis=0), sum(len(p) for p in pieces)


def test_rasterising_is_unchanged_and_its_length_is_known_in_advance():
    rng = np.random.default_rng(7)
    for _ in range(500):
        points = rng.integers(0, rng.integers(2, 80), size=(rng.integers(2, 9), 3))
        voxels, visited = reference_raster(points)
        assert np.array_equal(rasterize_polyline(points), voxels)
        assert polyline_length(points) == visited
    assert polyline_length(np.array([[1, 2, 3]])) == 1


def test_polyline_budget_refuses_before_rasterising():
    zigzag = np.array([[0, 0, 0], [0, 500, 500]] * 5_000)  # 5e6 voxels if rasterised
    with pytest.raises(InvalidPrompt, match="trace more than 100000 voxels"):
        check_polyline_budget([zigzag], 100_000)
    check_polyline_budget([zigzag[:2]], 100_000)


def test_merge_marks_keeps_the_newest_label():
    old = Marks(np.array([[0, 0, 0], [0, 0, 1]]), np.array([[0, 0, 2]]))
    new = Marks(np.array([[0, 0, 2]]), np.array([[0, 0, 1], [0, 0, 3]]))
    merged = merge_marks(old, new)
    assert merged.fg.tolist() == [[0, 0, 0], [0, 0, 2]]
    assert merged.bg.tolist() == [[0, 0, 1], [0, 0, 3]]


# -- the parameters /v1/capabilities lists (names, defaults): described, with units ----------
# A parameter's spec is its dataclass field and the comment beside it (on its line with its
# continuation lines, or the comment block just above it): the only place a caller learns
# what `border_cost` or `error_scale` measures. Numbers carry their unit in the name
# (`margin_mm`, `coarse_voxels`) or in the comment, or say they have none ("ratio", "count").
UNIT_WORDS = re.compile(
    r"\b(mm2?|voxels?|pixels?|slices|std|z-scores|intensities|crossings|influence lengths"
    r"|ratio|fraction|x|times|count|probability|p0?|Dice|weight)\b|per mm|0\.\.1|\[0, 1\]")


def registered_params() -> list[type]:
    plugins = builtin.build()
    found = ([m.params_type for m in plugins.methods] + [p.params_type for p in plugins.predictors]
             + [PropagationParams])
    return list(dict.fromkeys(found))


def field_comment(params_type: type, name: str) -> str:
    """The comment text that describes field `name` in its declaring class's source: the
    comment on its line with the comment lines that continue it, and the comment block just
    above it (a block below a field without a comment of its own heads the next field)."""
    owner = next(c for c in params_type.__mro__ if name in vars(c).get("__annotations__", {}))
    lines = inspect.getsourcelines(owner)[0]
    comments = {tok.start[0] - 1: tok.string
                for tok in tokenize.generate_tokens(io.StringIO("".join(lines)).readline)
                if tok.type == tokenize.COMMENT}
    at = next(i for i, line in enumerate(lines) if re.match(rf"\s+{name}\s*:", line))
    only_comment = lambda i: i in comments and lines[i].lstrip().startswith("#")
    above = list(itertools.takewhile(only_comment, range(at - 1, -1, -1)))
    below = (list(itertools.takewhile(only_comment, range(at + 1, len(lines))))
             if at in comments else [])
    return " ".join(comments[i] for i in sorted([*above, at, *below]) if i in comments)


@pytest.mark.parametrize("params_type", registered_params(), ids=lambda t: t.__name__)
def test_every_published_parameter_has_a_description_and_a_unit(params_type):
    for f in dataclasses.fields(params_type):
        text = field_comment(params_type, f.name)
        assert text.strip("# "), f"{params_type.__name__}.{f.name} has no comment"
        if type(getattr(params_type(), f.name)) in (int, float):
            assert UNIT_WORDS.search(f"{f.name.replace('_', ' ')} {text}"), \
                f"{params_type.__name__}.{f.name}: no unit (or 'ratio' / 'count') in {text!r}"


@dataclass(frozen=True)
class _Declared:
    bare: float = 1.0
    # heads the next field, not a continuation of `bare`
    headed_mm: float = 2.0
    inline: int = 3  # count: described on its line
    # and continued here


def test_field_comment_reads_the_line_its_continuation_and_the_block_above():
    assert field_comment(_Declared, "bare") == ""
    assert field_comment(_Declared, "headed_mm") == (
        "# heads the next field, not a continuation of `bare`")
    assert field_comment(_Declared, "inline") == ("# count: described on its line "
                                                  "# and continued here")
    assert "robust std of the head" in field_comment(GraphCutParams, "unlike_spread")
    # an inherited field: its declaring class's comment
    assert "start slice's mean" in field_comment(FusedParams, "intensity_k")
