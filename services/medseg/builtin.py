"""The composition root: every built-in method, slice predictor, job kind and model, in one
screen. The API (`medseg.api.app.create_app`) and the worker (`medseg.worker`) call `build`
once at start, so both processes serve the same set.

Adding a method is one module that builds a `Method` (see docs/plugins.md) plus one line in
`build`; a deployment adds its own without editing this file by naming a module in
MEDSEG_PLUGINS whose `register(plugins)` registers more (e.g. `tests/plugins/dummy_method.py`).
"""

from __future__ import annotations

import importlib

from medseg.engine import (
    bifseg_method,
    editing_method,
    graphcut_method,
    manual_tools,
    mideepseg_method,
    propagation_net,
    refinenet_method,
    slice_predictors,
    slicewise_method,
)
from medseg.engine.method import Method
from medseg.engine.propagation import PredictorSpec
from medseg.jobs import noop
from medseg.jobs.kinds import JobKind
from medseg.models.loader import default_loader
from medseg.plugins import Plugins
from medseg.registry import Registry
from medseg.usecases import finetune, pacs, propagation

DEFAULT_METHOD = graphcut_method.METHOD.name
# the method `select`, `brush` and `adjust` use when a request names none (docs/benchmarks.md)
DEFAULT_EDITING_METHOD = editing_method.DEEP_METHOD.name
# the network fused with the model-free seeds: best one-shot and corrected Dice on held-out
# and seen organs (docs/benchmarks.md); "graphcut-seeds" needs no weights
DEFAULT_PREDICTOR = propagation_net.FUSED_PREDICTOR.name


def configure_engine(threads: int) -> None:
    """This process's engine threads (`MEDSEG_ENGINE_THREADS`): the pool a slicewise first
    click overlaps its independent parts on (engine/slicewise_method.py; 0: in order)."""
    slicewise_method.set_workers(threads)


def build(plugin_modules: str = "") -> Plugins:
    """Every built-in, then the `register(plugins)` of each comma-separated plug-in module."""
    methods: Registry[Method] = Registry("method", default=DEFAULT_METHOD)
    methods.register(graphcut_method.METHOD)
    methods.register(mideepseg_method.METHOD)
    methods.register(bifseg_method.METHOD)
    methods.register(slicewise_method.METHOD)  # 3D from the 2D networks (issue 13)
    methods.register(manual_tools.METHOD)  # paint, erase, fill (issue 14)
    methods.register(editing_method.DEEP_METHOD)  # select, brush, adjust (issue 14)
    methods.register(editing_method.CLASSICAL_METHOD)
    methods.register(refinenet_method.METHOD)  # organ starts + refinement clicks (issue 14)

    predictors: Registry[PredictorSpec] = Registry("propagation method", default=DEFAULT_PREDICTOR)
    predictors.register(slice_predictors.PREDICTOR)
    predictors.register(propagation_net.PREDICTOR)
    predictors.register(propagation_net.FUSED_PREDICTOR)

    job_kinds: Registry[JobKind] = Registry("job kind")
    job_kinds.register(noop.NOOP)
    job_kinds.register(propagation.job_kind(predictors))
    job_kinds.register(finetune.JOB_KIND)
    models = default_loader()
    job_kinds.register(pacs.push_job_kind(models))  # STOW-RS of a DICOM SEG (docs/pacs.md)

    plugins = Plugins(methods, predictors, job_kinds, models)
    for name in (n.strip() for n in plugin_modules.split(",")):
        if name:
            _load_plugin(name, plugins)
    return plugins


def _load_plugin(name: str, plugins: Plugins) -> None:
    """ValueError (a configuration error: the process does not start) when it cannot."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ValueError(f"plug-in module {name!r} (MEDSEG_PLUGINS) cannot be imported: "
                         f"{exc}") from None
    register = getattr(module, "register", None)
    if not callable(register):
        raise ValueError(f"plug-in module {name!r} (MEDSEG_PLUGINS) has no register(plugins)")
    register(plugins)
