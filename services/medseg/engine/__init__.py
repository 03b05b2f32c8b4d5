"""Segmentation engine: typed volumes and prompts, image I/O, interactive methods.

Pure NumPy (and later torch/onnxruntime); never imports FastAPI or Redis.
"""
