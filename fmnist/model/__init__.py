"""A model and how it runs: architectures, device and precision, determinism, checkpoints, inference."""

import os

# cuBLAS reads this once, when CUDA initialises; deterministic mode needs it. Set here, before any
# module that can touch torch.cuda is imported.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
