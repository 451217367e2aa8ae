"""Exporting a model for production runtimes: ONNX with its preprocessing record (`ranklist export`)."""

from ranklist.export.onnx_model import OUTPUT_EMBEDDING, OnnxModelInfo, export_onnx, read_onnx_info

__all__ = ["OUTPUT_EMBEDDING", "OnnxModelInfo", "export_onnx", "read_onnx_info"]
