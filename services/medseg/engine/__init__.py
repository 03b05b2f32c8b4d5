"""Segmentation engine: typed volumes and prompts, image I/O, the interactive methods, slice
propagation and BIFSeg fine-tuning. NumPy, SciPy and onnxruntime; never FastAPI, Redis or torch.
"""
