"""export stage: a trained run folder -> a portable bundle (ONNX network + plain-JSON head + pipeline +
metadata.json + model card) that `ctnodule.predict.bundle` runs with onnxruntime, without torch.

    from ctnodule.export.bundle import export_bundle
    export_bundle("runs/voi-binary", "bundles/voi-binary")
"""
