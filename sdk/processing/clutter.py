"""Clutter filtering of IQ ensembles with the SVD, power Doppler and colour (Kasai) Doppler.

The ensemble ``iq[frame, axial, lateral]`` is reshaped into the Casorati matrix ``S`` (pixels x
frames). Its right singular vectors come from the eigen-decomposition of the small Gram matrix
``G = S^H S`` (frames x frames), ``G = V diag(sigma^2) V^H``: ``P N^2 + N^3`` work with a far
smaller constant than a full SVD of ``S``. Components are sorted by decreasing singular value and
numbered from 0; the filter keeps ``low <= k < high``: ``S_f = S V_k V_k^H``. Tissue occupies the
first components, blood the middle ones and noise the last.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from sonoedge.errors import DataError
from sonoedge.processing._checks import as_ensemble, require
from sonoedge.types import SPEED_OF_SOUND_M_S

CutoffMethod = Literal["fixed", "energy", "ssm"]
CUTOFF_METHODS: tuple[CutoffMethod, ...] = ("fixed", "energy", "ssm")
ComplexArray = npt.NDArray[np.complex64]
_GRAM_CHUNK_PX = 4096
Solver = Literal["gram", "full"]


def casorati(iq: npt.ArrayLike) -> ComplexArray:
    """The Casorati matrix ``S[pixel, frame]`` of an ensemble ``[frame, axial, lateral]``."""
    arr = as_ensemble(iq)
    return arr.reshape(arr.shape[0], -1).T


def _gram(x: npt.NDArray[np.complexfloating]) -> npt.NDArray[np.complex128]:
    """``S^H S = conj(X) X^T`` for a stack ``x[block, frame, pixel]`` (``X = S^T``), in float64.

    With ``R = [Re X; Im X]`` one real product ``R R^T = [[A, B], [B^T, D]]`` gives
    ``S^H S = (A + D) + i (B - B^T)``; real float64 BLAS on frame-major rows is faster than
    complex128 on the Casorati layout.
    """
    n = x.shape[1]
    real = np.zeros((x.shape[0], 2 * n, 2 * n))
    for k in range(x.shape[0]):  # small temporaries: large allocations are slow on some hosts
        for start in range(0, x.shape[2], _GRAM_CHUNK_PX):
            chunk = x[k, :, start : start + _GRAM_CHUNK_PX]
            r = np.empty((2 * n, chunk.shape[1]))
            r[:n] = chunk.real
            r[n:] = chunk.imag
            real[k] += r @ r.T
    a, b, d = real[:, :n, :n], real[:, :n, n:], real[:, n:, n:]
    return (a + d) + 1j * (b - b.transpose(0, 2, 1))


def _eig_stack(
    x: npt.NDArray[np.complexfloating], solver: Solver
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.complex128]]:
    """Singular values and right singular vectors of ``S = X^T`` for ``x[block, frame, pixel]``."""
    if solver == "full":
        u, sv, _ = np.linalg.svd(x, full_matrices=False)  # X = U Σ W^H, so S = conj(W) Σ U^T
        return sv.astype(np.float64), np.conj(u).astype(np.complex128)
    require(solver == "gram", "solver", "'gram' or 'full'", solver)
    eigval, eigvec = np.linalg.eigh(_gram(x))
    sv = np.sqrt(np.clip(eigval[:, ::-1], 0.0, None))
    return sv, eigvec[:, :, ::-1]


def gram_eig(
    s: npt.NDArray[np.complexfloating], solver: Solver = "gram"
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.complex128]]:
    """Singular values (descending) and right singular vectors ``V`` (columns) of ``S``.

    ``solver="gram"`` forms ``S^H S`` in float64 chunk by chunk and calls ``eigh``; ``"full"``
    runs ``numpy.linalg.svd`` on ``S`` (the slow reference).
    """
    sv, v = _eig_stack(np.asarray(s).T[None], solver)
    return sv[0], v[0]


def energy_cutoff(sv: npt.ArrayLike, energy_fraction: float = 0.9) -> int:
    """Smallest ``low`` such that components ``0..low-1`` hold ``energy_fraction`` of the energy
    ``sum sigma^2``. Those leading (tissue) components are removed; the result is at least 1.
    """
    require(0 < energy_fraction < 1, "energy_fraction", "0 < fraction < 1", energy_fraction)
    energy = np.asarray(sv, np.float64) ** 2
    total = energy.sum()
    if total <= 0:
        return 1
    cum = np.cumsum(energy) / total
    return max(1, int(np.searchsorted(cum, energy_fraction) + 1))


def _ssm_stack(
    x: npt.NDArray[np.complexfloating], sv: npt.NDArray[np.float64], v: npt.NDArray[np.complex128]
) -> npt.NDArray[np.float64]:
    """SSMs of a stack ``x[block, frame, pixel]``: rows of ``|V^T X| / sigma`` are ``|u_i|``."""
    vt = v.transpose(0, 2, 1).astype(x.dtype)
    u = np.abs(np.matmul(vt, x)) / np.maximum(sv, 1e-30)[:, :, None].astype(np.float32)
    u = u - u.mean(axis=2, keepdims=True)
    u = u / np.maximum(np.linalg.norm(u, axis=2, keepdims=True), 1e-30)
    return np.asarray(np.matmul(u, u.transpose(0, 2, 1)), np.float64)


def spatial_similarity_matrix(
    s: npt.NDArray[np.complexfloating], sv: npt.ArrayLike, v: npt.NDArray[np.complexfloating]
) -> npt.NDArray[np.float64]:
    """Spatial similarity matrix (Baranger et al. 2018): ``C_ij = corr(|u_i|, |u_j|)``.

    ``u_i = S v_i / sigma_i`` are the spatial singular vectors; ``corr`` is the Pearson coefficient
    over pixels.
    """
    svals = np.asarray(sv, np.float64)[None]
    return _ssm_stack(np.asarray(s).T[None], svals, np.asarray(v, np.complex128)[None])[0]


def ssm_cutoffs(ssm: npt.ArrayLike) -> tuple[int, int]:
    """Fit a two-square model to the SSM and return the blood band ``(low, high)``.

    For every ``1 <= a < b <= N`` the binary model ``M`` is 1 on ``[0,a)^2`` (tissue) and
    ``[a,b)^2`` (blood); the pair maximising the Pearson correlation between ``M`` and the SSM is
    chosen (block sums from 2-D prefix sums, so all pairs cost ``O(N^2)``).
    """
    c = np.asarray(ssm, np.float64)
    n = c.shape[0]
    if n < 3:
        return 1, n
    q = np.zeros((n + 1, n + 1))
    q[1:, 1:] = c.cumsum(0).cumsum(1)
    a, b = np.meshgrid(np.arange(1, n), np.arange(2, n + 1), indexing="ij")
    valid = b > a
    diag = np.diag(q)
    tissue = diag[a] - 2 * q[0, a] + q[0, 0]
    blood = diag[b] - q[a, b] - q[b, a] + diag[a]
    total = n * n
    p = (a * a + (b - a) ** 2) / total
    cov = (tissue + blood) / total - c.mean() * p
    denom = c.std() * np.sqrt(np.clip(p * (1 - p), 1e-30, None))
    score = np.where(valid & (p < 1), cov / np.maximum(denom, 1e-30), -np.inf)
    i, j = np.unravel_index(int(np.argmax(score)), score.shape)
    return int(a[i, j]), int(b[i, j])


def _band_masks(
    x: npt.NDArray[np.complexfloating],
    sv: npt.NDArray[np.float64],
    v: npt.NDArray[np.complex128],
    cutoff: CutoffMethod,
    low: int | None,
    high: int | None,
    energy_fraction: float,
) -> tuple[npt.NDArray[np.bool_], list[tuple[int, int]]]:
    n_blocks, n = sv.shape
    if cutoff == "fixed":
        bands = [
            ((max(1, n // 8) if low is None else int(low)), (n if high is None else int(high)))
        ]
        bands *= n_blocks
    elif cutoff == "energy":
        hi = n if high is None else int(high)
        bands = [(lo, max(hi, lo + 1)) for lo in (energy_cutoff(x, energy_fraction) for x in sv)]
    else:
        ssm = _ssm_stack(x, sv, v)
        bands = [ssm_cutoffs(c) for c in ssm]
    bands = [(min(lo, n - 1), min(hi, n)) for lo, hi in bands]
    k = np.arange(n)
    masks = np.stack([(k >= lo) & (k < hi) for lo, hi in bands])
    return masks, bands


def _filter_stack(
    x: ComplexArray,
    cutoff: CutoffMethod,
    low: int | None,
    high: int | None,
    energy_fraction: float,
    solver: Solver,
) -> tuple[ComplexArray, list[tuple[int, int]]]:
    """Filter a stack ``x[block, frame, pixel]`` (transposed Casorati matrices).

    ``S_f = S V_k V_k^H`` becomes ``X_f = conj(V_k V_k^H) X`` in this layout.
    """
    sv, v = _eig_stack(x, solver)
    masks, bands = _band_masks(x, sv, v, cutoff, low, high, energy_fraction)
    kept = v * masks[:, None, :]
    projector = np.conj(np.matmul(kept, np.conj(v.transpose(0, 2, 1)))).astype(np.complex64)
    return np.matmul(projector, x), bands


def _check_cutoff_args(n: int, cutoff: str, low: int | None, high: int | None) -> None:
    require(cutoff in CUTOFF_METHODS, "cutoff", f"one of {CUTOFF_METHODS}", cutoff)
    if cutoff != "fixed":
        return
    lo = max(1, n // 8) if low is None else low
    hi = n if high is None else high
    if lo >= n:
        raise DataError(
            f"the ensemble has N={n} frame(s) but the SVD cutoff low={lo} removes all of them",
            hint=f"use a longer ensemble or low < {n}",
        )
    require(lo >= 0, "low", f"0 <= low < {n}", low)
    require(lo < hi <= n, "high", f"low < high <= N={n}", high)


def svd_filter(
    iq: npt.ArrayLike,
    cutoff: CutoffMethod = "fixed",
    low: int | None = None,
    high: int | None = None,
    energy_fraction: float = 0.9,
    block_px: int | None = None,
    block_overlap: float = 0.5,
    solver: Solver = "gram",
) -> ComplexArray:
    """SVD clutter filter of an ensemble ``[frame, axial, lateral]``; returns the blood signal.

    ``cutoff``: ``"fixed"`` keeps components ``low..high-1`` (default ``low = max(1, N // 8)``,
    ``high = N``); ``"energy"`` removes the leading components that hold ``energy_fraction`` of
    the energy; ``"ssm"`` picks ``(low, high)`` from the spatial similarity matrix. With
    ``block_px`` the field is filtered in overlapping square blocks (local cutoffs, Hann-weighted
    blending; all blocks are decomposed together as one batch), which follows spatially varying
    clutter.

    Example: ``blood = svd_filter(iq, cutoff="ssm"); pd_db = power_doppler(blood)``.
    """
    arr = as_ensemble(iq, min_frames=2)
    n, h, w = arr.shape
    _check_cutoff_args(n, cutoff, low, high)
    if block_px is None:
        out, _ = _filter_stack(arr.reshape(1, n, -1), cutoff, low, high, energy_fraction, solver)
        return out.reshape(n, h, w)
    require(block_px >= 4, "block_px", ">= 4 pixels", block_px)
    require(0 <= block_overlap < 1, "block_overlap", "0 <= overlap < 1", block_overlap)
    return _blockwise(arr, cutoff, low, high, energy_fraction, block_px, block_overlap, solver)


def _starts(length: int, block: int, step: int) -> list[int]:
    if length <= block:
        return [0]
    starts = list(range(0, length - block + 1, step))
    if starts[-1] != length - block:
        starts.append(length - block)
    return starts


def _blockwise(
    arr: ComplexArray,
    cutoff: CutoffMethod,
    low: int | None,
    high: int | None,
    energy_fraction: float,
    block_px: int,
    overlap: float,
    solver: Solver,
) -> ComplexArray:
    n, h, w = arr.shape
    bh, bw = min(block_px, h), min(block_px, w)
    step = max(1, round(block_px * (1 - overlap)))
    corners = [(z0, x0) for z0 in _starts(h, bh, step) for x0 in _starts(w, bw, step)]
    stack = np.stack([arr[:, z0 : z0 + bh, x0 : x0 + bw].reshape(n, -1) for z0, x0 in corners])
    filtered, _ = _filter_stack(stack, cutoff, low, high, energy_fraction, solver)
    win = np.outer(np.hanning(bh + 2)[1:-1], np.hanning(bw + 2)[1:-1]).astype(np.float32)
    acc = np.zeros((n, h, w), np.complex64)
    weight = np.zeros((h, w), np.float32)
    for (z0, x0), block in zip(corners, filtered, strict=True):
        acc[:, z0 : z0 + bh, x0 : x0 + bw] += block.reshape(n, bh, bw) * win
        weight[z0 : z0 + bh, x0 : x0 + bw] += win
    return acc / weight


def svd_cutoffs(
    iq: npt.ArrayLike,
    cutoff: CutoffMethod = "ssm",
    low: int | None = None,
    high: int | None = None,
    energy_fraction: float = 0.9,
) -> tuple[int, int]:
    """The ``(low, high)`` band that :func:`svd_filter` keeps for the whole field."""
    arr = as_ensemble(iq, min_frames=2)
    _check_cutoff_args(arr.shape[0], cutoff, low, high)
    x = arr.reshape(1, arr.shape[0], -1)
    sv, v = _eig_stack(x, "gram")
    return _band_masks(x, sv, v, cutoff, low, high, energy_fraction)[1][0]


def power_doppler(
    filtered: npt.ArrayLike, db: bool = True, floor_db: float = -100.0
) -> npt.NDArray[np.float32]:
    """Power Doppler ``P = mean_n |s_f[n]|^2``; in dB ``10 log10(P / max P)`` (>= ``floor_db``)."""
    arr = as_ensemble(filtered, "filtered")
    power = np.mean(arr.real**2 + arr.imag**2, axis=0, dtype=np.float64)
    if not db:
        return np.asarray(power, np.float32)
    peak = power.max()
    if peak <= 0:
        return np.full(power.shape, floor_db, np.float32)
    return np.maximum(10 * np.log10(np.maximum(power / peak, 1e-30)), floor_db).astype(np.float32)


def color_doppler(
    filtered: npt.ArrayLike,
    prf_hz: float,
    center_frequency_hz: float,
    lag: int = 1,
    speed_of_sound_m_s: float = SPEED_OF_SOUND_M_S,
) -> npt.NDArray[np.float32]:
    """Axial velocity (m/s, positive towards the probe) by the Kasai autocorrelator.

    ``R(lag) = sum_n s[n + lag] conj(s[n])``; ``v = c * PRF * angle(R) / (4 pi f0 * lag)``. The
    Nyquist velocity is ``c * PRF / (4 f0 lag)``.
    """
    arr = as_ensemble(filtered, "filtered", min_frames=lag + 1)
    require(prf_hz > 0 and math.isfinite(prf_hz), "prf_hz", "> 0", prf_hz)
    require(center_frequency_hz > 0, "center_frequency_hz", "> 0", center_frequency_hz)
    require(lag >= 1, "lag", ">= 1", lag)
    r = np.sum(arr[lag:] * np.conj(arr[:-lag]), axis=0)
    phase = np.asarray(np.angle(r))
    scale = speed_of_sound_m_s * prf_hz / (4 * np.pi * center_frequency_hz * lag)
    return (phase * scale).astype(np.float32)
