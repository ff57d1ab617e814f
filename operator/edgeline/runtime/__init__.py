"""The edge runtime: the small inference server that every edge Deployment runs.

It fetches one model (`loader`), proves its sha256 before loading it with onnxruntime,
optionally checks a golden sample (`golden`), and serves it over the Open Inference
Protocol v2 (`server`, tensors coded by `tensors`), with Prometheus metrics (`metrics`)
and one JSON log line per event (`events`). `edgeline runtime serve` starts it (`serve`).
"""
