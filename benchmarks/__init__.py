"""Benchmarks: Kiln against ONNX Runtime (models.py) and GEMM against the CPU's peak (gemm.py)."""
