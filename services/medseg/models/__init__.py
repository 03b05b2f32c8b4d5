"""Networks (torch definitions), their ONNX export, runtime sessions and the model registry."""
