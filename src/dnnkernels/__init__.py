"""dnnkernels: implementations and approximations of DNN primitives.

Modules, one idea each:

- ``conv2d``: 2-D convolution (cross-correlation) by loops, im2col, Winograd and FFT.
- ``matmul``: matrix multiplication, direct, through truncated SVD, and in the log domain.
- ``precision``: reconstruction error of each method at each numerical precision.
- ``data``: MNIST, offline and checksum-verified.
- ``models`` / ``train``: the MLP and LeNet of the course and their training.
- ``lowrank``: low-rank approximation, SVD layers and compression sweeps.
- ``accumulator``, ``energy``, ``quantize``, ``intengine``, ``partial_sums``: b-bit
  accumulation, the energy model, int8 quantization, the integer inference engine and its
  partial-sum statistics; ``bitwidth``: the accumulator bit-width study built on them.
- ``tasks``: the exercises of the course, one task ID each.
"""

__version__ = "0.1.0"
