"""The two server images: the CPU one and its GPU variant (CUDA base, the `gpu` extra with
onnxruntime-gpu, the CPU build swapped out and the CUDA provider checked at build time)."""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT


def test_gpu_image_variant_matches_the_gpu_extra():
    gpu = (ROOT / "deploy" / "Dockerfile.gpu").read_text()
    base = next(line for line in gpu.splitlines() if line.startswith("FROM "))
    assert base.startswith("FROM nvidia/cuda:") and "runtime" in base
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["gpu"]
    assert any(req.startswith("onnxruntime-gpu") for req in extra)
    assert 'pip install ".[gpu]"' in gpu and "pip uninstall -y onnxruntime" in gpu
    assert "'CUDAExecutionProvider' in o.get_available_providers()" in gpu
    # the same server as the CPU image: same sources, user, health check and command
    cpu = (ROOT / "deploy" / "Dockerfile").read_text()
    for line in cpu.splitlines():
        if line.startswith(("COPY ", "USER ", "EXPOSE ", "HEALTHCHECK ", "CMD ", "ENV MEDSEG")):
            assert line in gpu.splitlines(), line
