"""Fashion-MNIST training library: the code the DVC stages in `stages/` share."""

import os

# cuBLAS reads this once, when CUDA initialises; deterministic mode needs it. Set here, before any
# module of the library (or a script importing it) can touch torch.cuda.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
