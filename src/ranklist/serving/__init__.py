"""Serving an index over HTTP: `ranklist serve` (FastAPI + uvicorn), the search page, the embedders
(PyTorch or ONNX Runtime) behind it. Needs the optional extra `ranklist[serve]`; importing this
package alone imports none of it."""
