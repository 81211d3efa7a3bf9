"""predict stage: apply a trained model. `bundle` runs an exported bundle with onnxruntime (no torch)."""
