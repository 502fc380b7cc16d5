# Generated automatically from src/dnnkernels/__init__.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""dnnkernels: implementations and approximations of DNN primitives.

Modules, one idea each:

- ``conv2d``: 2-D convolution (cross-correlation) by loops, im2col, Winograd and FFT.
- ``matmul``: matrix multiplication, direct, through truncated SVD, and in the log domain.
- ``precision``: reconstruction error of each method at each numerical precision.
- ``data``: MNIST, offline and checksum-verified.
- ``models`` / ``train``: the MLP and LeNet of the course and their training.
- ``lowrank``: low-rank approximation, SVD layers and compression sweeps.
- ``bitwidth``: integer inference with a b-bit accumulator and the energy model.
- ``tasks``: the exercises of the course, one task ID each.
"""

__version__ = "0.1.0"
