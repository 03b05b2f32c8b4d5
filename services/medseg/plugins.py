"""What a server offers, as one value: the registries of methods, slice predictors, job kinds
and models. The composition root (`medseg.builtin.build`) fills one; the API keeps it on the
app, the worker in its process; the use cases take it as an argument."""

from __future__ import annotations

from dataclasses import dataclass

from medseg.engine.method import Method
from medseg.engine.propagation import PredictorSpec
from medseg.jobs.kinds import JobKind
from medseg.models.loader import ModelLoader
from medseg.registry import Registry


@dataclass
class Plugins:
    methods: Registry[Method]
    predictors: Registry[PredictorSpec]
    job_kinds: Registry[JobKind]
    models: ModelLoader  # its `cards` registry lists the models; it also runs them
