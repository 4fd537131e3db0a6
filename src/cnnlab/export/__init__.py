"""Using a trained run outside training: predictions on image files, and the model exported to
ONNX / torch.export (.pt2) / TorchScript with its normalization inside (uint8 pixels in,
probabilities out). Built on ``cnnlab.runs.load_run``'s handle.

    from cnnlab import load_run
    from cnnlab.export import export_run, predict_files
    run = load_run("runs/20261122-101500-004-a")
    export_run(run, "onnx")                       # runs/.../model.onnx, checked with onnxruntime
    result = predict_files(run, ["photos/"])      # top-k per file, scores for class folders
"""
from cnnlab.export.check import CheckResult
from cnnlab.export.formats import FORMATS, ExportError, read_contract
from cnnlab.export.packaged import PackagedModel, input_contract, package
from cnnlab.export.predictions import FilePredictions, format_predictions, predict_files, write_predictions
from cnnlab.export.run_export import ExportResult, export_run

__all__ = ["CheckResult", "ExportError", "ExportResult", "FORMATS", "FilePredictions", "PackagedModel",
           "export_run", "format_predictions", "input_contract", "package", "predict_files", "read_contract",
           "write_predictions"]
