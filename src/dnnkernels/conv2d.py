"""2-D convolution (cross-correlation, as in ``torch.nn.functional.conv2d``), five ways.

``conv2d(x, k, b=None, method="naive", stride=1, padding=0)`` validates its arguments and
dispatches to one of

- ``"torch"``: ``torch.nn.functional.conv2d`` (the reference);
- ``"naive"``: explicit loops over the output pixels (:func:`conv2d_naive`, the readable
  definition; small inputs only);
- ``"im2col"``: the patch matrix and one matrix product (:func:`conv2d_im2col`);
- ``"winograd"`` / ``"winograd4"``: Winograd's minimal filtering F(2x2, 3x3) / F(4x4, 3x3)
  (:func:`conv2d_winograd`, transforms from :func:`winograd_transforms`);
- ``"fft"``: a product of real FFTs (:func:`conv2d_fft`).

Every method computes, for the batched form ``x (N, C, H, W)``, ``k (O, C, kh, kw)``,
``b (O,)``, stride ``s`` and zero padding ``p`` (``xp`` is ``x`` padded by ``p`` zeros on each
side of both spatial dimensions)::

    y[n, o, i, j] = b[o] + sum_{c, u, v} xp[n, c, s*i + u, s*j + v] * k[o, c, u, v]

    y has shape (N, O, H', W'),  H' = (H + 2p - kh) // s + 1,  W' = (W + 2p - kw) // s + 1

This is a cross-correlation: the kernel is not flipped. The single-channel form
``x (H, W)``, ``k (kh, kw)``, ``b`` a scalar, a 0-d tensor or shape ``(1,)`` gives ``(H', W')``.

Dtypes. The output has the dtype of ``x``; ``k`` and a tensor ``b`` must have the same dtype.

- ``"torch"``, ``"naive"`` and ``"im2col"`` take float16, bfloat16, float32, float64 and the
  signed integer dtypes int8, int16, int32, int64. Integer results are exact modulo
  ``2**bits`` (two's complement wrap-around, what a ``bits``-wide multiply-accumulate
  unit with wrap-around gives; torch's integer arithmetic wraps the same way).
- ``"winograd"``, ``"winograd4"`` and ``"fft"`` take floating dtypes only (their transforms
  have fractional or complex coefficients) and finite values only (one inf or NaN would
  spread over a whole tile or the whole image, unlike the direct methods).
- Winograd computes in the input dtype (transforms rounded to it); FFT computes in float64
  (complex128) for float64 input and in float32 (complex64) otherwise, then casts back.

Stride and padding. All methods take ``padding``: Winograd and FFT implement it by padding
the input with zeros before calling their kernel. ``stride`` other than 1 is supported by
``"torch"``, ``"naive"`` and ``"im2col"`` only; Winograd also needs a 3x3 kernel. Anything
else raises a ``ValueError`` that says so.
"""

from __future__ import annotations

import math

import numpy as np  # noqa: F401  (available to the exercise functions)
import torch
import torch.nn.functional as F

from dnnkernels.checks import check_choice, check_int, check_tensor, describe

__all__ = [
    "METHODS",
    "FLOAT_DTYPES",
    "INT_DTYPES",
    "conv2d",
    "conv2d_naive",
    "conv2d_im2col",
    "conv2d_winograd",
    "conv2d_fft",
    "winograd_transforms",
    "output_size",
    "fast_fft_size",
]

METHODS = ("naive", "torch", "im2col", "winograd", "winograd4", "fft")
"""The ``method`` names accepted by :func:`conv2d`."""

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64)

# dtypes each method accepts; methods with transforms need floats and finite values.
_METHOD_DTYPES = {
    "naive": FLOAT_DTYPES + INT_DTYPES,
    "torch": FLOAT_DTYPES + INT_DTYPES,
    "im2col": FLOAT_DTYPES + INT_DTYPES,
    "winograd": FLOAT_DTYPES,
    "winograd4": FLOAT_DTYPES,
    "fft": FLOAT_DTYPES,
}
_NEEDS_FINITE = ("winograd", "winograd4", "fft")
#: Winograd method name -> output tile size m of F(m x m, 3 x 3)
WINOGRAD_M = {"winograd": 2, "winograd4": 4}


def output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length along one axis: ``(size + 2*padding - kernel) // stride + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


# ---------------------------------------------------------------------------------------------
# Public dispatcher (students need not touch this: it checks arguments and calls the kernels)
# ---------------------------------------------------------------------------------------------


def conv2d(
    x: torch.Tensor,
    k: torch.Tensor,
    b: torch.Tensor | float | int | None = None,
    method: str = "naive",
    stride: int = 1,
    padding: int = 0,
) -> torch.Tensor:
    """2-D cross-correlation with the semantics of ``torch.nn.functional.conv2d``.

    Args:
        x: input, ``(H, W)`` (single-channel form) or ``(N, C, H, W)`` (batched form).
        k: kernel, ``(kh, kw)`` with a 2-D ``x``, ``(O, C, kh, kw)`` with a 4-D ``x``;
            same dtype as ``x``.
        b: bias or None. Single-channel form: a Python number, a 0-d tensor or a tensor of
            shape ``(1,)``. Batched form: a tensor of shape ``(O,)``. Same dtype as ``x``.
        method: one of :data:`METHODS` (see the module docstring).
        stride: step ``s >= 1`` of the window in both spatial dimensions.
        padding: number ``p >= 0`` of zeros added on each side of both spatial dimensions.

    Returns:
        ``y`` of shape ``(H', W')`` or ``(N, O, H', W')`` and the dtype of ``x``, with
        ``y[n, o, i, j] = b[o] + sum_{c,u,v} xp[n, c, s*i+u, s*j+v] * k[o, c, u, v]`` and
        ``H' = (H + 2p - kh) // s + 1``, ``W' = (W + 2p - kw) // s + 1``.

    Raises:
        TypeError: a non-tensor ``x``/``k``/``b``, a dtype the method cannot take, or
            ``k``/``b`` of another dtype than ``x``.
        ValueError: an unknown method, wrong numbers of dimensions, a channel or bias
            mismatch, a kernel larger than the padded input, ``stride < 1``,
            ``padding < 0``, a stride or kernel size the method cannot take, NaN or inf
            where the method cannot take them.
    """
    method = check_choice("method", method, METHODS)
    stride = check_int("stride", stride, low=1)
    padding = check_int("padding", padding, low=0)
    x4, k4, b1, single = _batched_form(x, k, b, method)

    N, C, H, W = x4.shape
    O, _, kh, kw = k4.shape
    if kh > H + 2 * padding or kw > W + 2 * padding:
        raise ValueError(
            f"k: got kernel of size {kh}x{kw}, expected at most the padded input size "
            f"{H + 2 * padding}x{W + 2 * padding} (x is {H}x{W}, padding={padding})"
        )
    if method in ("winograd", "winograd4", "fft") and stride != 1:
        raise ValueError(
            f"stride: got {stride}, expected 1 for method {method!r} "
            "(use 'torch', 'naive' or 'im2col' for strided convolution)"
        )
    if method in WINOGRAD_M and (kh, kw) != (3, 3):
        raise ValueError(
            f"k: got kernel of size {kh}x{kw}, expected 3x3 for method {method!r} "
            "(Winograd F(m x m, 3 x 3) is for 3x3 kernels)"
        )

    if method == "torch":
        y = F.conv2d(x4, k4, b1, stride=stride, padding=padding)
    elif method == "naive":
        y = conv2d_naive(x4, k4, b1, stride=stride, padding=padding)
    elif method == "im2col":
        y = conv2d_im2col(x4, k4, b1, stride=stride, padding=padding)
    else:
        # Winograd and FFT take padding as an input padded with zeros beforehand.
        xp = F.pad(x4, (padding, padding, padding, padding)) if padding else x4
        if method == "fft":
            y = conv2d_fft(xp, k4, b1)
        else:
            y = conv2d_winograd(xp, k4, b1, m=WINOGRAD_M[method])
    return y[0, 0] if single else y


def _batched_form(
    x: object, k: object, b: object, method: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, bool]:
    """Check ``x``, ``k``, ``b`` and return them in the batched form, plus "was single"."""
    dtypes = _METHOD_DTYPES[method]
    finite = method in _NEEDS_FINITE
    x = check_tensor("x", x, ndim=(2, 4))
    _check_dtype("x", x, dtypes, method)
    single = x.ndim == 2
    k = check_tensor("k", k)
    if k.ndim != x.ndim:
        raise ValueError(
            f"k: got {describe(k)} ({k.ndim}-D), expected {x.ndim}-D like x "
            f"({'(kh, kw)' if single else '(O, C, kh, kw)'})"
        )
    if k.dtype != x.dtype:
        raise TypeError(f"k: got dtype {k.dtype}, expected the dtype of x ({x.dtype})")
    for name, t in (("x", x), ("k", k)):
        if t.numel() == 0:
            raise ValueError(f"{name}: got {describe(t)}, expected no dimension of size 0")
        if finite:
            check_tensor(name, t, finite=True)
    if single:
        x, k = x[None, None], k[None, None]
    elif k.shape[1] != x.shape[1]:
        raise ValueError(
            f"k: got {describe(k)} with {k.shape[1]} input channels, expected "
            f"{x.shape[1]} input channels like x (k is (O, C, kh, kw), x is (N, C, H, W))"
        )
    O = k.shape[0]

    if b is None:
        return x, k, None, single
    if single and isinstance(b, (int, float)) and not isinstance(b, bool):
        if isinstance(b, float) and not x.is_floating_point():
            raise TypeError(f"b: got {describe(b)}, expected an int for integer x ({x.dtype})")
        b = torch.tensor([b], dtype=x.dtype, device=x.device)
    elif not isinstance(b, torch.Tensor):
        wanted = "a number or a tensor of shape (1,)" if single else f"a tensor of shape ({O},)"
        raise TypeError(f"b: got {describe(b)}, expected None or {wanted}")
    if b.dtype != x.dtype:
        raise TypeError(f"b: got dtype {b.dtype}, expected the dtype of x ({x.dtype})")
    if single and b.ndim == 0:
        b = b.reshape(1)
    if tuple(b.shape) != (O,):
        wanted = "a scalar or shape (1,)" if single else f"shape ({O},), one per output channel"
        raise ValueError(f"b: got {describe(b)}, expected {wanted}")
    if finite:
        check_tensor("b", b, finite=True)
    return x, k, b, single


def _check_dtype(name: str, t: torch.Tensor, dtypes: tuple[torch.dtype, ...], method: str):
    if t.dtype not in dtypes:
        names = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise TypeError(
            f"{name}: got dtype {t.dtype}, expected one of {names} for method {method!r}"
        )


# ---------------------------------------------------------------------------------------------
# The naive definition (teaching reference)
# ---------------------------------------------------------------------------------------------


def conv2d_naive(
    x: torch.Tensor,
    k: torch.Tensor,
    b: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
) -> torch.Tensor:
    """The definition of conv2d, written with explicit loops over the output pixels.

    Deliberately slow (a Python loop over ``N * O * H' * W'`` pixels): use it on small
    inputs only, as the readable reference that the fast methods are tested against.

    Args:
        x: ``(N, C, H, W)``, a float or signed integer dtype.
        k: ``(O, C, kh, kw)``, the dtype of ``x``.
        b: ``(O,)`` or None, the dtype of ``x``.
        stride: step ``s >= 1`` of the window.
        padding: zeros ``p >= 0`` added on each side of both spatial dimensions.

    Returns:
        ``(N, O, H', W')``, dtype of ``x``, with
        ``y[n, o, i, j] = b[o] + sum_{c, u, v} xp[n, c, s*i + u, s*j + v] * k[o, c, u, v]``.
        Integer sums are formed in int64 (``torch.sum``) and cast back, which is exact
        modulo ``2**bits`` of the dtype.
    """
    N, C, H, W = x.shape
    O, _, kh, kw = k.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    Ho, Wo = output_size(H, kh, stride, padding), output_size(W, kw, stride, padding)
    acc_dtype = x.dtype if x.is_floating_point() else torch.int64
    y = torch.zeros(N, O, Ho, Wo, dtype=acc_dtype, device=x.device)
    for n in range(N):
        for o in range(O):
            for i in range(Ho):
                for j in range(Wo):
                    window = xp[n, :, stride * i : stride * i + kh, stride * j : stride * j + kw]
                    y[n, o, i, j] = (window * k[o]).sum()
            if b is not None:
                y[n, o] += b[o]
    return y.to(x.dtype)


# ---------------------------------------------------------------------------------------------
# Exercises: the course kit holds the reference solutions here; in the student build each
# body runs the student's own function instead (see dnnkernels._student)
# ---------------------------------------------------------------------------------------------


def conv2d_im2col(
    x: torch.Tensor,
    k: torch.Tensor,
    b: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
) -> torch.Tensor:
    """conv2d as one matrix product with the im2col patch matrix.

    Pad ``x`` with ``p`` zeros on each side, then collect every ``kh x kw`` window of
    every channel (windows start every ``s`` pixels) as one column of the patch matrix
    ``P``::

        P[n, (c, u, v), (i, j)] = xp[n, c, s*i + u, s*j + v]    P: (N, C*kh*kw, H'*W')
        K[o, (c, u, v)]         = k[o, c, u, v]                 K: (O, C*kh*kw)
        Y[n] = K @ P[n]                                         Y: (N, O, H'*W')

    and reshape ``Y`` to ``(N, O, H', W')``, adding ``b[o]`` to channel ``o``. (Stacking
    the ``N`` images side by side, this is one GEMM
    ``(O, C*kh*kw) @ (C*kh*kw, N*H'*W')``.) Build ``P`` without a Python loop over
    pixels: ``Tensor.unfold`` (a strided view of all windows), ``torch.as_strided`` or
    ``F.unfold`` all work; the only arithmetic is the product. Putting the pixel index
    ``(i, j)`` last makes both the copy into ``P`` and the result's layout contiguous,
    which is several times faster than rows of patches.

    Args:
        x: ``(N, C, H, W)``, a float or signed integer dtype.
        k: ``(O, C, kh, kw)``, same dtype as ``x``; ``kh <= H + 2p`` and
            ``kw <= W + 2p``.
        b: ``(O,)`` (same dtype) or None.
        stride: ``s >= 1``.
        padding: ``p >= 0``.

    Returns:
        ``(N, O, H', W')`` with ``H' = (H + 2p - kh) // s + 1``,
        ``W' = (W + 2p - kw) // s + 1``, dtype of ``x``; equal to
        ``F.conv2d(x, k, b, stride=s, padding=p)``.
    """
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    O, _, kh, kw = k.shape
    if padding:
        x = F.pad(x, (padding, padding, padding, padding))
    # all windows as a strided view: (N, C, H', W', kh, kw), no copy yet
    windows = x.unfold(2, kh, stride).unfold(3, kw, stride)
    Ho, Wo = windows.shape[2], windows.shape[3]
    # the patch matrix (one copy): rows (c, u, v), columns (i, j), one per image
    patches = windows.permute(0, 1, 4, 5, 2, 3).reshape(N, C * kh * kw, Ho * Wo)
    y = k.reshape(O, C * kh * kw) @ patches  # (N, O, H'*W'): the GEMM
    if b is not None:
        y = y + b.view(1, O, 1)
    return y.reshape(N, O, Ho, Wo)
    ### END SOLUTION


def winograd_transforms(
    m: int, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The transform matrices ``(AT, G, BT)`` of Winograd's F(m, 3) (Lavin & Gray, 2016).

    For an input tile ``d`` of length ``a = m + 2`` and a filter ``g`` of length 3, the
    ``m`` outputs of the correlation ``y[i] = sum_u d[i + u] * g[u]`` are::

        y = AT @ ((G @ g) * (BT @ d))          AT: (m, a), G: (a, 3), BT: (a, a)

    and in two dimensions (nesting the 1-D algorithm), for a tile ``d (a, a)`` and a filter
    ``g (3, 3)``: ``Y = AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T``, of shape ``(m, m)``.

    The interpolation points are ``0, 1, -1`` and infinity for ``m = 2`` and
    ``0, 1, -1, 2, -2`` and infinity for ``m = 4``: the matrices are those of Lavin & Gray,
    "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016). F(2, 3) uses 4
    multiplications for 2 outputs instead of 6; F(4, 3) uses 6 instead of 12, at the cost of
    larger coefficients (and so larger rounding errors in low precision).

    Args:
        m: output tile size, 2 or 4.
        dtype: a floating dtype; the exact rational entries are rounded to it (``1/6`` and
            ``1/24`` of F(4, 3) are not exact in any binary format).

    Returns:
        ``(AT, G, BT)`` of shapes ``(m, m+2)``, ``(m+2, 3)``, ``(m+2, m+2)`` and dtype ``dtype``.
    """
    check_int("m", m)
    if m not in (2, 4):
        raise ValueError(f"m: got {m}, expected 2 or 4 (Winograd F(2x2, 3x3) or F(4x4, 3x3))")
    if not isinstance(dtype, torch.dtype) or dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"dtype: got {describe(dtype)}, expected one of "
            f"{', '.join(str(d) for d in FLOAT_DTYPES)}"
        )
    if m == 2:
        AT = [[1, 1, 1, 0], [0, 1, -1, -1]]
        G = [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]]
        BT = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    else:
        AT = [
            [1, 1, 1, 1, 1, 0],
            [0, 1, -1, 2, -2, 0],
            [0, 1, 1, 4, 4, 0],
            [0, 1, -1, 8, -8, 1],
        ]
        G = [
            [1 / 4, 0, 0],
            [-1 / 6, -1 / 6, -1 / 6],
            [-1 / 6, 1 / 6, -1 / 6],
            [1 / 24, 1 / 12, 1 / 6],
            [1 / 24, -1 / 12, 1 / 6],
            [0, 0, 1],
        ]
        BT = [
            [4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1],
        ]
    # build in float64 (exact up to one rounding per entry), then round once to dtype
    return tuple(torch.tensor(T, dtype=torch.float64).to(dtype) for T in (AT, G, BT))


def conv2d_winograd(
    x: torch.Tensor, k: torch.Tensor, b: torch.Tensor | None = None, m: int = 2
) -> torch.Tensor:
    """conv2d (stride 1, no padding, 3x3 kernels) by Winograd's F(m x m, 3 x 3).

    With ``AT, G, BT = winograd_transforms(m, x.dtype)`` and tile size ``a = m + 2``:

    1. Filter transform, for every (o, c): ``U[o, c] = G @ k[o, c] @ G.T``, shape
       ``(O, C, a, a)``.
    2. Cover the output ``(H-2) x (W-2)`` with ``T x S`` tiles of ``m x m``
       (``T = ceil((H-2)/m)``, ``S = ceil((W-2)/m)``); pad ``x`` with zeros at the
       bottom and right to ``(T*m + 2) x (S*m + 2)`` so that odd sizes work. Output tile
       ``(t, s)`` needs the input tile ``d = x[..., t*m : t*m + a, s*m : s*m + a]``:
       input tiles overlap by 2. Extract all of them at once (``Tensor.unfold`` with
       size ``a`` and step ``m``, or ``as_strided``): ``d`` of shape
       ``(N, C, T, S, a, a)``.
    3. Input transform: ``V = BT @ d @ BT.T``, shape ``(N, C, T, S, a, a)``.
    4. Element-wise product summed over channels:
       ``M[n, o, t, s] = sum_c U[o, c] * V[n, c, t, s]``, shape ``(N, O, T, S, a, a)``.
       For each of the ``a*a`` tile positions this is a matrix product over ``c``, so
       the whole step is a batch of ``a*a`` GEMMs ``(O, C) @ (C, N*T*S)``
       (``torch.bmm``).
    5. Output transform: ``Y = AT @ M @ AT.T``, shape ``(N, O, T, S, m, m)``.
    6. Reassemble the tiles into ``(N, O, T*m, S*m)``, crop to ``(H-2) x (W-2)``, add
       ``b[o]``.

    Speed: the 2-D transforms of steps 3 and 5 on every tile at once are one GEMM each,
    with the Kronecker product of the 1-D transforms: flattening a tile row-major,
    ``vec(BT @ d @ BT.T) = kron(BT, BT) @ vec(d)`` (and likewise for ``AT``). Keeping
    the tile position ``p`` (``a*a`` of them) as the leading dimension from the tile
    copy to the output transform makes every step a plain GEMM on contiguous memory:
    only the tile extraction and the final reassembly move data.

    Args:
        x: ``(N, C, H, W)`` with ``H, W >= 3``, a floating dtype, finite values.
        k: ``(O, C, 3, 3)``, same dtype.
        b: ``(O,)`` (same dtype) or None.
        m: output tile size, 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)).

    Returns:
        ``(N, O, H-2, W-2)``, dtype of ``x`` (all arithmetic in that dtype); equal to
        ``F.conv2d(x, k, b)`` up to rounding.
    """
    ### BEGIN SOLUTION
    AT, G, BT = winograd_transforms(m, x.dtype)
    AT, G, BT = AT.to(x.device), G.to(x.device), BT.to(x.device)
    N, C, H, W = x.shape
    O = k.shape[0]
    a = m + 2
    Ho, Wo = H - 2, W - 2
    T, S = math.ceil(Ho / m), math.ceil(Wo / m)
    tiles = N * T * S
    x = F.pad(x, (0, S * m + 2 - W, 0, T * m + 2 - H))
    # 1. filter transform, one (O, C) matrix per tile position p: U[p, o, c]
    U = (G @ k @ G.T).reshape(O, C, a * a).permute(2, 0, 1)  # (a*a, O, C)
    # 2. all overlapping input tiles (one copy), tile position first: d[p, (c, n, t, s)]
    d = x.unfold(2, a, m).unfold(3, a, m)  # (N, C, T, S, a, a), a strided view
    d = d.permute(4, 5, 1, 0, 2, 3).reshape(a * a, C * tiles)
    # 3. input transform of every tile: one GEMM with kron(BT, BT)
    V = (torch.kron(BT, BT) @ d).view(a * a, C, tiles)
    # 4. element-wise product summed over c: a*a GEMMs (O, C) @ (C, N*T*S)
    M = torch.bmm(U, V)  # (a*a, O, N*T*S)
    # 5. output transform: one GEMM with kron(AT, AT)
    Y = (torch.kron(AT, AT) @ M.view(a * a, O * tiles)).view(m, m, O, N, T, S)
    # 6. reassemble (i, j, o, n, t, s) -> (n, o, t*m + i, s*m + j) in one copy, crop,
    # bias
    y = torch.empty(N, O, T * m, S * m, dtype=x.dtype, device=x.device)
    y.view(N, O, T, m, S, m).copy_(Y.permute(3, 2, 4, 0, 5, 1))
    y = y[:, :, :Ho, :Wo]
    if b is not None:
        return y + b.view(1, O, 1, 1)
    return y.contiguous()
    ### END SOLUTION


def fast_fft_size(n: int) -> int:
    """The smallest ``L >= n`` whose prime factors are all 2, 3 or 5.

    FFT libraries (pocketfft inside torch) are fastest on such lengths; a prime length such as
    47 can be several times slower than 48. Zero-padding a convolution beyond its
    linear-convolution size does not change its valid part, so FFT convolution may always
    round its size up to ``fast_fft_size``.

    Args:
        n: a length ``>= 1``.

    Returns:
        ``L``, an int with ``L >= n`` and ``L = 2**i * 3**j * 5**l``.
    """
    check_int("n", n, low=1)
    size = n
    while True:
        rest = size
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return size
        size += 1


def conv2d_fft(
    x: torch.Tensor,
    k: torch.Tensor,
    b: torch.Tensor | None = None,
) -> torch.Tensor:
    """conv2d (stride 1, no padding) as a product of real 2-D FFTs.

    The FFT computes circular *convolutions*; conv2d is a *correlation*, so:

    1. Flip the kernel in both spatial dimensions: ``kf = k.flip(-2, -1)``; then
       correlation with ``k`` is convolution with ``kf``.
    2. Zero-pad to at least the linear-convolution size ``(H + kh - 1) x (W + kw - 1)``
       (the ``s=`` argument of ``torch.fft.rfft2`` does it), so that the circular
       convolution equals the linear one. Any larger size gives the same valid part, and
       an FFT is much faster when its length has only small prime factors, so use
       ``Hf = fast_fft_size(H + kh - 1)`` and ``Wf = fast_fft_size(W + kw - 1)``.
    3. ``X = rfft2(x)`` ``(N, C, Hf, Wf//2 + 1)``, ``K = rfft2(kf)``
       ``(O, C, Hf, Wf//2 + 1)``; ``Y[n, o] = sum_c X[n, c] * K[o, c]`` (one
       ``einsum``); ``full = irfft2(Y, s=(Hf, Wf))``.
    4. The full convolution has the correlation (the "valid" part) at
       ``full[..., kh-1 : H, kw-1 : W]``, of shape ``(H - kh + 1, W - kw + 1)``. Add
       ``b[o]``.

    Precision: compute in float64 / complex128 when ``x`` is float64, otherwise in
    float32 / complex64 (torch has no half-precision CPU FFT for all sizes); cast the
    result back.

    Args:
        x: ``(N, C, H, W)``, a floating dtype, finite values.
        k: ``(O, C, kh, kw)`` with ``kh <= H``, ``kw <= W``, same dtype.
        b: ``(O,)`` (same dtype) or None.

    Returns:
        ``(N, O, H - kh + 1, W - kw + 1)``, dtype of ``x``; equal to
        ``F.conv2d(x, k, b)`` up to rounding.
    """
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    O, _, kh, kw = k.shape
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    size = (fast_fft_size(H + kh - 1), fast_fft_size(W + kw - 1))
    X = torch.fft.rfft2(x.to(work), s=size)  # (N, C, Hf, Wf//2 + 1)
    K = torch.fft.rfft2(k.flip(-2, -1).to(work), s=size)  # (O, C, Hf, Wf//2 + 1)
    full = torch.fft.irfft2(torch.einsum("nchw,ochw->nohw", X, K), s=size)
    y = full[:, :, kh - 1 : H, kw - 1 : W]
    if b is not None:
        y = y + b.to(work).view(1, O, 1, 1)
    return y.to(x.dtype).contiguous()
    ### END SOLUTION
