"""envsetup: from a fresh OS with an NVIDIA driver to PyTorch 2.x working on its GPU, proven."""

__version__ = "0.1.0"
