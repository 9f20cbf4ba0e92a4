"""Guided patch-based synthesis: EbSynth's algorithm (Jamriska et al. 2019) in numba.

Given a stylized source frame (the keyframe's ``style``) and guides that describe both the
source and the target frame (colours, edges, positions, ...), synthesize the target's style
so that every target patch looks like some source patch, both in style and in guides.

Per target pixel ``t`` the nearest-neighbour field (NNF) names the centre ``s`` of a source
patch.  Its energy is the weighted patch SSD over the ``p x p`` patch and all channels::

    E(t, s) = sum_patch  w_style/3 |T - S|^2  +  sum_g  w_g/C_g |G_t - G_s|^2

Each weight is divided by its channel count, as EbSynth's command line does, so a guide's
weight does not depend on how many channels it has and the uniformity weight keeps
EbSynth's meaning.  A candidate ``s'`` replaces ``s`` only if::

    E(t, s') + lambda occ(s')  <  E(t, s) + lambda occ(s)

where ``occ(s) = sum_{patch(s)} Omega / p^2 / omega_best``, ``Omega`` counts how many target
patches cover each source pixel and ``omega_best = |T|/|S| p^2`` is that count for a
perfectly even use of the source (the uniformity term of StyLit).  It stops a few source
patches from being copied everywhere, which would wash out the style.

The solver is EbSynth's: a coarse-to-fine pyramid (2x bilinear downsampling, random NNF at
the coarsest level, NNF upsampled 2x between levels); per level ``search_vote_iters`` times
{PatchMatch with ``patchmatch_iters`` sweeps of propagation + random search; vote: every
target pixel becomes the plain mean of the source pixels that the ``p^2`` patches covering
it predict}.  Given ``initial_nnf`` (e.g. the previous frame's matches moved along the
flow, as :func:`restyle.propagate.propagate_by_patches` does) it runs the finest level
only, starting from that field.

Where this differs from EbSynth, and why:

* **Deterministic in parallel.**  A PatchMatch sweep propagates from the left and upper
  neighbours (right and lower on reverse sweeps), which is inherently sequential.  Sweeps
  here run over 16x16 tiles in anti-diagonal wavefronts: a tile starts once the tiles to
  its left and above are done, so every pixel propagates from final neighbours, as in a
  sequential scan, and a good match can travel across the whole image in one sweep (a
  Jacobi-style parallel sweep moves it one pixel).  Random-search candidates come from a
  counter-based hash of ``(seed, level, iteration, pixel)``, not from a shared generator.
* **Uniformity bookkeeping.**  ``sum_{patch(s)} Omega`` for every source centre ``s`` is one
  integer map: the NNF's per-centre counts filtered with the overlap-area kernel
  ``(p - |dx|)(p - |dy|)``, so a candidate's occupancy is one lookup instead of a ``p^2``
  sum.  EbSynth updates Omega after every accepted move; here the moves of a diagonal of
  tiles are applied between diagonals, so tiles running side by side see each other's
  moves one diagonal later.  Integer updates: exact, and the same whatever the order.
  (Holding Omega fixed for a whole sweep, the simpler choice, makes the field oscillate:
  every pixel leaves an over-used region at once and comes back the sweep after.)
* Patches are clamped at the borders of *both* images (edge replication), and source patch
  centres may lie anywhere in the source.  EbSynth keeps source centres ``r`` pixels from
  the border, so a target border pixel can never be predicted by its own source pixel and
  borders come out smeared; here the identity mapping is reachable everywhere.
* The working data are float32 feature planes with ``sqrt(weight)`` folded into each
  channel, interleaved per pixel, so one patch row is a single contiguous run of
  ``p * channels`` floats: the SSD is one vectorised loop per row, with EbSynth's early
  exit after each row.  Channels with zero weight are dropped.
* Voting is parallel (EbSynth's CPU voting is single-threaded) and the target style is
  kept in float between votes instead of being rounded to 8 bits.
* Starting from ``initial_nnf`` the random search skips EbSynth's three largest radii
  (``search_radius``): their samples almost never win there and, being cache misses, they
  cost the most.

Results are the same bytes for the same inputs and seed on a given machine, whatever the
thread count (float sums are vectorised in an order fixed at compile time, which may differ
between CPU types).  Compiled kernels are cached on disk (numba ``cache=True``) in a per-user
folder shared by every checkout of the same source (:mod:`restyle.engine_cache`), so a new
process only pays for loading them; the one that has to compile says so on stderr.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numba
import numpy as np
from numba import njit, prange

# Registers restyle's cache locator; must come before the @njit(cache=True) kernels below.
from restyle import engine_cache

# 'reassoc' lets LLVM vectorise the SSD reduction (the order of the adds is fixed when the
# kernel is compiled, so results still do not depend on threads); no nnan/ninf assumptions.
_FASTMATH = {"reassoc", "contract"}
_TILE = 16  # wavefront tile side; the uniformity term sees moves between diagonals of tiles
_MASK32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Synthesis:
    """Result of :func:`synthesize`.

    Attributes
    ----------
    image : uint8 (Ht, Wt, 3)
        The synthesized target style.
    error : float32 (Ht, Wt)
        Per target pixel, the final patch energy at the finest level (style + guides,
        weights as in the energy above) divided by ``p^2`` and by the total weight
        ``style_weight + sum(guide_weights)``: a weighted mean squared difference per patch
        pixel, in squared 0..255 units, comparable between calls with other weights.
    nnf : int32 (Ht, Wt, 2)
        Per target pixel, ``(x, y)`` of the centre of its source patch.
    """

    image: np.ndarray
    error: np.ndarray
    nnf: np.ndarray


# --------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------

@njit(inline="always")
def _hash32(x):
    """The engine's one integer hash, of the low 32 bits of ``x``.

    The kernels call it compiled; :func:`_key` and :func:`_random_nnf` call the same source
    in Python (``_hash32.py_func``) on ints and int64 arrays.  The multiplier is below 2^27,
    so the int64 products never overflow and all three give the same values.
    """
    x = x & 0xFFFFFFFF
    x = (((x >> 16) ^ x) * 0x45D9F3B) & 0xFFFFFFFF
    x = (((x >> 16) ^ x) * 0x45D9F3B) & 0xFFFFFFFF
    return (x >> 16) ^ x


@njit(inline="always", fastmath=_FASTMATH)
def _patch_ssd(T, S, tx, ty, sx, sy, p, C, bound):
    """SSD of the target patch at padded top-left (tx, ty) and the source one at (sx, sy).

    Rows are contiguous runs of p*C floats.  Stops once the sum reaches ``bound``: the
    candidate has lost, and its exact energy is not needed.
    """
    n = p * C
    to = tx * C
    so = sx * C
    acc = np.float32(0.0)
    for j in range(p):
        # Slices indexed from 0 by the loop counter: numba can then drop its negative-index
        # fix-up and LLVM vectorises the loop.
        trow = T[ty + j, to:to + n]
        srow = S[sy + j, so:so + n]
        for k in range(n):
            d = trow[k] - srow[k]
            acc += d * d
        if acc >= bound:
            return acc
    return acc


@njit(inline="always")
def _prior(occupancy, occ_weight, sx, sy, ax, ay, coherence):
    """The energy of source centre (sx, sy) besides its patch SSD: ``lambda occ(s)``, less
    ``coherence`` when it is the anchored match (ax, ay)."""
    e = occupancy[sy, sx] * occ_weight
    if sx == ax and sy == ay:
        e -= coherence
    return e


@njit(inline="always", fastmath=_FASTMATH)
def _try_patch(T, S, C, p, occupancy, occ_weight, x, y, ax, ay, coherence, cx, cy, bx, by, be, bp):
    """EbSynth's ``tryPatch``: target pixel (x, y) takes the candidate source centre (cx, cy)
    iff its energy, patch SSD + :func:`_prior`, is below that of its best match so far.

    The best match is (bx, by) with SSD ``be`` and prior ``bp``; returns the new best
    ``(bx, by, be, bp)``.  The candidate's SSD stops once it cannot win.
    """
    if cx == bx and cy == by:
        return bx, by, be, bp
    cp = _prior(occupancy, occ_weight, cx, cy, ax, ay, coherence)
    bound = be + bp - cp  # the candidate wins iff its SSD is below this
    if bound > 0:
        e = _patch_ssd(T, S, x, y, cx, cy, p, C, bound)
        if e < bound:
            return cx, cy, e, cp
    return bx, by, be, bp


@njit
def _stamp(occupancy, sx, sy, p, sign):
    """Add ``sign`` times one patch at centre (sx, sy) to the overlap counts (see _occupancy):
    ``(p - |dx|)(p - |dy|)`` around it, clipped to the source."""
    source_h, source_w = occupancy.shape
    x0 = max(sx - p + 1, 0)
    x1 = min(sx + p, source_w)
    for v in range(max(sy - p + 1, 0), min(sy + p, source_h)):
        wy = sign * (p - abs(v - sy))
        row = occupancy[v, x0:x1]
        for k in range(x1 - x0):
            row[k] += wy * (p - abs(x0 + k - sx))


@njit(inline="always")
def _diagonal_tile(diagonal, tile_y, tiles_x, tiles_y, reverse):
    """(tile_x, tile_y) of the tile in row ``tile_y`` of anti-diagonal ``diagonal``,
    mirrored when the sweep runs from the bottom-right."""
    tile_x = diagonal - tile_y
    if reverse:
        return tiles_x - 1 - tile_x, tiles_y - 1 - tile_y
    return tile_x, tile_y


@njit(cache=True, parallel=True, fastmath=_FASTMATH)
def _patchmatch_sweep(T, S, C, p, nnf, E, occupancy, occ_weight, reverse, recompute, key, max_radius,
                      anchor, coherence, active):
    """One PatchMatch sweep over the whole target, in place.

    Tiles run in anti-diagonal wavefronts, in parallel within a diagonal.  A pixel reads the
    NNF only of its own tile and of tiles on earlier diagonals (all final), and ``occupancy``
    only between diagonals' updates, so the result does not depend on the thread count.

    T, S : float32 (Hp, Wp * C) padded, weighted target / source features
    nnf : int32 (Ht, Wt, 2) source centres, updated in place
    E : float32 (Ht, Wt) patch energies of ``nnf``, updated in place
    occupancy : int32 (Hs, Ws) see :func:`_occupancy`; kept up to date as matches move
    occ_weight : lambda / p^2 / omega_best: ``occupancy * occ_weight = lambda * occ``
    reverse : scan from the bottom-right, propagating from the right and lower neighbours
    recompute : the target style changed since ``E`` was computed (a vote ran)
    key : 32-bit random key of this sweep
    max_radius : radii of the random search above this are skipped
    anchor : int32 (Ht, Wt, 2) the previous frame's matches moved along the flow; keeping
        one costs ``coherence`` less, so a match moves only when clearly better (a patch
        that hops between near-equal sources from frame to frame is what flickers)
    coherence : float32 energy bonus of the anchored match (0: no anchor)
    active : uint8 (Ht, Wt) pixels searched; the others keep their match and their ``E``
    """
    height, width = nnf.shape[:2]
    source_h, source_w = occupancy.shape
    origin = nnf.copy()  # to find the matches that moved, for the occupancy updates
    q = -1 if reverse else 1
    # Random-search radii max(W, H) * 0.5^k down to 1, tried smallest first like EbSynth.
    r0 = max(source_w, source_h)
    while r0 > max(max_radius, 1):
        r0 //= 2
    n_radii = 0
    r = r0
    while r >= 1:
        n_radii += 1
        r //= 2
    radii = np.empty(n_radii, np.int64)
    r = r0
    for i in range(n_radii):
        radii[n_radii - 1 - i] = r
        r //= 2

    tiles_x = (width + _TILE - 1) // _TILE
    tiles_y = (height + _TILE - 1) // _TILE
    # Tiles on one anti-diagonal depend only on tiles of the previous ones: run them in
    # parallel, the diagonals in order.
    for diagonal in range(tiles_x + tiles_y - 1):
        first = max(0, diagonal - tiles_x + 1)
        last = min(tiles_y - 1, diagonal)
        for i in prange(last - first + 1):
            tile_x, tile_y = _diagonal_tile(diagonal, first + i, tiles_x, tiles_y, reverse)
            y0 = tile_y * _TILE
            x0 = tile_x * _TILE
            y1 = min(y0 + _TILE, height)
            x1 = min(x0 + _TILE, width)
            for yy in range(y1 - y0):
                y = y1 - 1 - yy if reverse else y0 + yy
                for xx in range(x1 - x0):
                    x = x1 - 1 - xx if reverse else x0 + xx
                    if active[y, x] == 0:
                        continue
                    bx = nnf[y, x, 0]
                    by = nnf[y, x, 1]
                    if recompute:
                        be = _patch_ssd(T, S, x, y, bx, by, p, C, np.float32(np.inf))
                    else:
                        be = E[y, x]
                    ax = anchor[y, x, 0]
                    ay = anchor[y, x, 1]
                    bp = _prior(occupancy, occ_weight, bx, by, ax, ay, coherence)

                    # Propagation: the already-final neighbour before us in scan order,
                    # shifted by one pixel (skipped when it leaves the source, as in EbSynth).
                    for axis in range(2):
                        nx = x - q if axis == 0 else x
                        ny = y - q if axis == 1 else y
                        if nx < 0 or nx >= width or ny < 0 or ny >= height:
                            continue
                        cx = nnf[ny, nx, 0] + (q if axis == 0 else 0)
                        cy = nnf[ny, nx, 1] + (q if axis == 1 else 0)
                        if cx < 0 or cx >= source_w or cy < 0 or cy >= source_h:
                            continue
                        bx, by, be, bp = _try_patch(T, S, C, p, occupancy, occ_weight, x, y, ax, ay,
                                                    coherence, cx, cy, bx, by, be, bp)

                    # Random search in shrinking windows around the propagated match.
                    h = _hash32(key ^ _hash32(y * width + x))
                    px = bx
                    py = by
                    for k in range(n_radii):
                        rad = radii[k]
                        lo_x = max(px - rad, 0)
                        lo_y = max(py - rad, 0)
                        span_x = min(px + rad, source_w - 1) - lo_x + 1
                        span_y = min(py + rad, source_h - 1) - lo_y + 1
                        # One 32-bit hash per candidate: 16 bits for x, 16 for y, scaled to
                        # the window by a multiply-shift instead of a division.
                        h = _hash32(h + 0x9E3779B9)
                        cx = lo_x + (((h & 0xFFFF) * span_x) >> 16)
                        cy = lo_y + (((h >> 16) * span_y) >> 16)
                        bx, by, be, bp = _try_patch(T, S, C, p, occupancy, occ_weight, x, y, ax, ay,
                                                    coherence, cx, cy, bx, by, be, bp)

                    nnf[y, x, 0] = bx
                    nnf[y, x, 1] = by
                    E[y, x] = be

        # The next diagonal sees where this one moved its matches.  Integer updates, so
        # their order does not matter; applied here, between diagonals, nobody reads them
        # half-done.
        if occ_weight != 0:
            for i in range(last - first + 1):
                tile_x, tile_y = _diagonal_tile(diagonal, first + i, tiles_x, tiles_y, reverse)
                for y in range(tile_y * _TILE, min(tile_y * _TILE + _TILE, height)):
                    for x in range(tile_x * _TILE, min(tile_x * _TILE + _TILE, width)):
                        ox = origin[y, x, 0]
                        oy = origin[y, x, 1]
                        if ox != nnf[y, x, 0] or oy != nnf[y, x, 1]:
                            _stamp(occupancy, ox, oy, p, -1)
                            _stamp(occupancy, nnf[y, x, 0], nnf[y, x, 1], p, 1)


@njit(cache=True, parallel=True, fastmath=_FASTMATH)
def _patch_energies(T, S, C, p, nnf, out):
    """Full patch SSD of every target pixel against its current match."""
    height, width = nnf.shape[:2]
    for y in prange(height):
        for x in range(width):
            out[y, x] = _patch_ssd(T, S, x, y, nnf[y, x, 0], nnf[y, x, 1], p, C, np.float32(np.inf))


@njit(cache=True, parallel=True)
def _vote(style, nnf, p, acc, out):
    """Each target pixel = mean of the source style pixels its p^2 covering patches predict.

    Every target patch adds its whole source patch onto an accumulator (contiguous rows,
    which vectorise, rather than p^2 scattered reads per pixel).  Patch rows ``p`` apart
    never overlap, so rows are processed in ``p`` phases of ``y % p``, each in parallel: the
    order of the additions, hence the bits of the result, do not depend on threads.

    style : float32 (Hs+2r, (Ws+2r)*C) source style (any channel count C), edge-padded by
        r = p // 2 (source patches are clamped at the border), so every source patch lies
        inside it
    acc : float32 (Ht+2r, (Wt+2r)*C) scratch accumulator, target padded by r
    out : float32 (Ht, Wt, C) the estimate
    """
    height, width = nnf.shape[:2]
    C = out.shape[2]
    r = p // 2
    n = C * p
    acc[:] = 0.0
    for phase in range(p):
        for i in prange((height - phase + p - 1) // p):
            y = phase + i * p
            for x in range(width):
                # Target patch top-left in padded coordinates is (x, y); the source one is the
                # centre nnf(x, y) + r - r.
                sx = nnf[y, x, 0]
                sy = nnf[y, x, 1]
                for j in range(p):
                    arow = acc[y + j, C * x:C * x + n]
                    srow = style[sy + j, C * sx:C * sx + n]
                    for k in range(n):
                        arow[k] += srow[k]
    for y in prange(height):
        # Only patches centred inside the target vote (as in EbSynth): fewer at the border.
        rows = min(y + r, height - 1) - max(y - r, 0) + 1
        for x in range(width):
            inv = np.float32(1.0) / np.float32(rows * (min(x + r, width - 1) - max(x - r, 0) + 1))
            for c in range(C):
                out[y, x, c] = acc[y + r, C * (x + r) + c] * inv


@njit(cache=True, parallel=True)
def _vote_at(image, nnf, p, at, out):
    """:func:`_vote` at the target pixels ``at`` (flat indices) only, each gathered from the
    patches covering it (``image`` (Hs, Ws, C) float32 unpadded; ``nnf`` any integer type,
    its centres clamped to the source here)."""
    height, width = nnf.shape[:2]
    source_h, source_w, C = image.shape
    r = p // 2
    for i in prange(len(at)):
        y, x = at[i] // width, at[i] % width
        total = np.zeros(C, np.float32)
        count = 0
        for qy in range(max(y - r, 0), min(y + r, height - 1) + 1):
            for qx in range(max(x - r, 0), min(x + r, width - 1) + 1):
                # Patch q predicts at pixel (x, y) its source centre plus the offset of (x, y) in it.
                cy = min(max(np.int64(nnf[qy, qx, 1]), 0), source_h - 1)
                cx = min(max(np.int64(nnf[qy, qx, 0]), 0), source_w - 1)
                sy = min(max(cy + y - qy, 0), source_h - 1)
                sx = min(max(cx + x - qx, 0), source_w - 1)
                for c in range(C):
                    total[c] += image[sy, sx, c]
                count += 1
        inv = np.float32(1.0) / np.float32(count)
        for c in range(C):
            out[y, x, c] = total[c] * inv


@njit(cache=True, parallel=True)
def _pack(out, image, c0, scale, r):
    """Write ``image * scale`` into channels c0.. of ``out``, edge-replicated by ``r``."""
    height, width, n = image.shape
    for py in prange(height + 2 * r):
        y = min(max(py - r, 0), height - 1)
        for px in range(width + 2 * r):
            x = min(max(px - r, 0), width - 1)
            for c in range(n):
                out[py, px, c0 + c] = image[y, x, c] * scale


# A one-line notice when these have to be compiled (not when loaded), and one compile for
# jobs that start together on a fresh machine.
engine_cache.watch(_patchmatch_sweep, _patch_energies, _vote, _vote_at, _pack,
                   what="the synthesis engine", takes=", about a minute")


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

def _key(*values: int) -> int:
    """Mix integers into a 32-bit key (with the kernels' hash, :func:`_hash32`)."""
    hash32 = _hash32.py_func
    key = 0x2545F491
    for v in values:
        key = hash32(key ^ hash32(int(v) & _MASK32))
    return key


def _random_nnf(target_h: int, target_w: int, source_h: int, source_w: int, key: int) -> np.ndarray:
    """Uniformly random source centres, a counter-based hash of (key, pixel)."""
    hash32 = _hash32.py_func  # on int64 arrays: every intermediate value stays below 2^59
    h = hash32(key ^ hash32(np.arange(target_h * target_w, dtype=np.int64)))
    nnf = np.empty((target_h, target_w, 2), np.int32)
    nnf[..., 0] = ((h & 0xFFFF) * source_w >> 16).reshape(target_h, target_w)
    nnf[..., 1] = ((h >> 16) * source_h >> 16).reshape(target_h, target_w)
    return nnf


def _occupancy(nnf: np.ndarray, source_h: int, source_w: int, p: int) -> np.ndarray:
    """Per source centre s: the sum over the source pixels u of patch(s) of Omega(u), int32.

    Omega(u) counts the target patches covering u, so the sum is the total overlap area of
    patch(s) with all target patches' source patches: the NNF's per-centre counts filtered
    with the overlap-area kernel (p - |dx|)(p - |dy|), which is separable.  The sweeps keep
    it up to date with :func:`_stamp`; integers, so both ways give the same numbers.
    """
    counts = np.bincount((nnf[..., 1].astype(np.int64) * source_w + nnf[..., 0]).ravel(),
                         minlength=source_w * source_h).reshape(source_h, source_w)
    tri = (p - np.abs(np.arange(1 - p, p))).astype(np.float64)
    # float64 holds these integer sums exactly; zero outside the source, like _stamp.
    overlap = cv2.sepFilter2D(counts.astype(np.float64), cv2.CV_64F, tri, tri, borderType=cv2.BORDER_CONSTANT)
    return np.rint(overlap).astype(np.int32)


def _level_size(width: int, height: int, level: int) -> tuple[int, int]:
    """EbSynth's level size: the base size times 2^-level, truncated."""
    return max(1, int(width * 0.5 ** level)), max(1, int(height * 0.5 ** level))


def pyramid_depth(height: int, width: int, patch_size: int) -> int:
    """As many pyramid levels as keep the smaller side >= ``2 * patch_size + 1`` (at least 1).

    512x512 with 5x5 patches gives 6 levels (512 ... 16), as EbSynth chooses.
    """
    depth = 0
    while min(_level_size(width, height, depth)) >= 2 * patch_size + 1:
        depth += 1
    return max(depth, 1)


def _downsample(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    # At a 2x factor, bilinear resampling averages 2x2 blocks: a proper area pyramid.
    out = cv2.resize(image.astype(np.float32, copy=False), size, interpolation=cv2.INTER_LINEAR)
    return out.reshape(size[1], size[0], *image.shape[2:])


def _upscale_nnf(nnf: np.ndarray, target_w: int, target_h: int, source_w: int, source_h: int) -> np.ndarray:
    """EbSynth's 2x NNF upsampling: 2 * nnf(x/2, y/2) + (x%2, y%2), clamped to the source."""
    ys = np.minimum(np.arange(target_h) // 2, nnf.shape[0] - 1)
    xs = np.minimum(np.arange(target_w) // 2, nnf.shape[1] - 1)
    up = nnf[ys[:, None], xs[None, :]] * 2
    up[..., 0] += (np.arange(target_w) % 2)[None, :]
    up[..., 1] += (np.arange(target_h) % 2)[:, None]
    np.clip(up[..., 0], 0, source_w - 1, out=up[..., 0])
    np.clip(up[..., 1], 0, source_h - 1, out=up[..., 1])
    return np.ascontiguousarray(up, dtype=np.int32)


def _as_planes(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    return image[..., None] if image.ndim == 2 else image


def _validate(style, source_guides, target_guides, guide_weights, style_weight, patch_size,
              search_vote_iters, patchmatch_iters):
    style = np.asarray(style)
    if style.ndim != 3 or style.shape[2] != 3 or style.dtype != np.uint8:
        raise ValueError(f"style must be uint8 (H, W, 3), got {style.dtype} {style.shape}")
    if not (len(source_guides) == len(target_guides) == len(guide_weights)):
        raise ValueError(f"need one target guide and one weight per source guide; got "
                         f"{len(source_guides)} source guides, {len(target_guides)} target guides, "
                         f"{len(guide_weights)} weights")
    if patch_size < 3 or patch_size % 2 == 0:
        raise ValueError(f"patch_size must be odd and >= 3, got {patch_size}")
    if search_vote_iters < 0 or patchmatch_iters < 0:
        raise ValueError(f"iteration counts must be >= 0, got search_vote_iters={search_vote_iters}, "
                         f"patchmatch_iters={patchmatch_iters}")
    if not (np.isfinite(style_weight) and style_weight >= 0):
        raise ValueError(f"style_weight must be finite and >= 0, got {style_weight}")
    target_shape = None
    for i, (src, tgt, w) in enumerate(zip(source_guides, target_guides, guide_weights)):
        src, tgt = np.asarray(src), np.asarray(tgt)
        if src.ndim not in (2, 3) or tgt.ndim not in (2, 3):
            raise ValueError(f"guide {i}: arrays must be (H, W) or (H, W, C); "
                             f"got source {src.shape}, target {tgt.shape}")
        if src.shape[:2] != style.shape[:2]:
            raise ValueError(f"guide {i}: source guide is {src.shape} but the style is {style.shape}; "
                             f"source guides must have the style's height and width")
        channels_s = 1 if src.ndim == 2 else src.shape[2]
        channels_t = 1 if tgt.ndim == 2 else tgt.shape[2]
        if channels_s != channels_t:
            raise ValueError(f"guide {i}: source {src.shape} and target {tgt.shape} "
                             f"have different channel counts")
        if target_shape is None:
            target_shape = tgt.shape[:2]
        elif tgt.shape[:2] != target_shape:
            raise ValueError(f"guide {i}: target guide is {tgt.shape} but target guide 0 is "
                             f"{target_shape}; all target guides must have the same size")
        if not (np.isfinite(w) and w >= 0):
            raise ValueError(f"guide {i}: weight must be finite and >= 0, got {w}")
    return style, (target_shape if target_shape is not None else style.shape[:2])


def _features(images, scales, r):
    """Weighted feature planes, interleaved per pixel, edge-padded by ``r``: (H+2r, (W+2r)*C).

    Each input is multiplied by its ``sqrt(weight / channels)``, so that plain squared
    differences of features carry the energy's weights; inputs with zero weight are left out.
    """
    used = [(_as_planes(a), s) for a, s in zip(images, scales) if s > 0]
    if not used:  # nothing is weighted: every patch costs 0
        used = [(np.zeros((*images[0].shape[:2], 1), np.float32), 0.0)]
    h, w = used[0][0].shape[:2]
    out = np.empty((h + 2 * r, w + 2 * r, sum(a.shape[2] for a, _ in used)), np.float32)
    c = 0
    for a, s in used:
        _pack(out, np.ascontiguousarray(a, dtype=np.float32), c, np.float32(s), r)
        c += a.shape[2]
    return out.reshape(h + 2 * r, -1)


@dataclass(frozen=True)
class PatchFeatures:
    """A frame's guides packed for :func:`patchmatch` (see :func:`patch_features`)."""

    planes: np.ndarray
    shape: tuple[int, int]
    channels: tuple[int, ...]
    guide_weights: tuple[float, ...]
    patch_size: int


def patch_features(guides: Sequence[np.ndarray], guide_weights: Sequence[float], patch_size: int) -> PatchFeatures:
    """Pack one frame's guides once, for a frame matched against several others.

    :func:`patchmatch` takes the result in place of a guide list (with the same weights and
    patch size); packing is otherwise a good part of a warm-started search's cost.

    Parameters
    ----------
    guides : sequence of arrays (H, W) or (H, W, C), 0..255 units
    guide_weights : sequence of float >= 0, one per guide
    patch_size : int
        Odd patch side.
    """
    planes = [_as_planes(g) for g in guides]
    if not planes or len(planes) != len(guide_weights):
        raise ValueError(f"patch_features needs one weight per guide and at least one guide; got "
                         f"{len(planes)} guides, {len(guide_weights)} weights")
    if patch_size < 3 or patch_size % 2 == 0:
        raise ValueError(f"patch_size must be odd and >= 3, got {patch_size}")
    for i, (g, w) in enumerate(zip(planes, guide_weights)):
        if g.ndim != 3 or g.shape[:2] != planes[0].shape[:2]:
            raise ValueError(f"guide {i}: must be (H, W) or (H, W, C) of guide 0's size "
                             f"{planes[0].shape[:2]}, got {np.shape(guides[i])}")
        if not (np.isfinite(w) and w >= 0):
            raise ValueError(f"guide {i}: weight must be finite and >= 0, got {w}")
    scales = [float(np.sqrt(w / g.shape[2])) for w, g in zip(guide_weights, planes)]
    return PatchFeatures(_features(planes, scales, int(patch_size) // 2), planes[0].shape[:2],
                         tuple(g.shape[2] for g in planes), tuple(float(w) for w in guide_weights), int(patch_size))


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------

@engine_cache.compile_session  # the compile lock, if taken, is released on return
def synthesize(style: np.ndarray, source_guides: Sequence[np.ndarray], target_guides: Sequence[np.ndarray],
               guide_weights: Sequence[float], *, style_weight: float = 1.0, patch_size: int = 5,
               uniformity: float = 3500.0, pyramid_levels: int | None = None, search_vote_iters: int = 6,
               patchmatch_iters: int = 4, search_radius: int | None = None, seed: int = 0,
               initial_nnf: np.ndarray | None = None, threads: int | None = None,
               output: str = "vote", coherence: float = 0.0) -> Synthesis:
    """Synthesize the target's style from a stylized source and matching guides (EbSynth).

    Parameters
    ----------
    style : uint8 (Hs, Ws, 3)
        The stylized source frame (keyframe).
    source_guides, target_guides : sequences of arrays (H, W) or (H, W, C), float or uint8
        Matched pairs: guide ``i`` has the same channel count in both, the source one at the
        style's size, the target ones all at the target size (which may differ from the
        source's; with no guides at all, the target has the source's size).  Values in
        0..255 units: scale them before.
    guide_weights : sequence of float
        One weight ``w_g >= 0`` per guide, divided by the guide's channel count.
    style_weight : float
        Weight of the style term, divided by 3: the target's current estimate (the last vote)
        against the source style.
    patch_size : int
        Odd patch side ``p``.
    uniformity : float
        ``lambda`` of the uniformity term; 0 turns it off.
    pyramid_levels : int, optional
        Number of levels, capped at :func:`pyramid_depth`; default: all of them.  Ignored with
        ``initial_nnf``.
    search_vote_iters, patchmatch_iters : int
        Per level: this many times {``patchmatch_iters`` PatchMatch sweeps, then a vote}.
    search_radius : int, optional
        Largest random-search radius at the finest level (halved per coarser level); the
        radii tried are EbSynth's ``max(Ws, Hs) * 0.5^k`` that do not exceed it.  Default:
        all of them (``max(Ws, Hs)``) from scratch, ``max(Ws, Hs) / 8`` with
        ``initial_nnf``, where far samples rarely win yet cost the most.
    seed : int
        Key of the random NNF initialisation and of the random search.
    initial_nnf : int (Ht, Wt, 2), optional
        A starting NNF, e.g. the previous frame's matches moved along the flow
        (:func:`restyle.propagate.advect_positions`, rounded).
        Synthesis then runs at the finest level only: the field already holds the coarse
        structure that the pyramid exists to find, so a frame of a video needs only a few
        iterations.  Values are clamped to the source.
    threads : int, optional
        Number of numba threads for this call (capped at numba's maximum); the result does
        not depend on it.
    output : {"vote", "nearest"}
        How the final image is read from the field.  ``vote`` (EbSynth): each pixel is the
        mean of the p^2 source pixels its overlapping patches predict, which smooths patch
        seams but also softens the strokes.  ``nearest``: each pixel is the source pixel at
        its own patch centre, as sharp as the keyframe itself.  The EM iterations vote in
        both cases; only the returned image differs.
    coherence : float
        With ``initial_nnf``: how much better (in the units of ``error``) another match must
        be before a pixel leaves its initial one.  Matches that hop between near-equal
        source patches from frame to frame are what makes patch-based video flicker;
        0 disables it.

    Returns
    -------
    Synthesis
        ``image``, ``error`` and ``nnf`` of the finest level.

    Raises
    ------
    ValueError
        On a bad style, mismatched guide counts, shapes or channel counts (naming the guide
        index and its shapes), negative weights, an even patch size or a bad ``initial_nnf``.
    """
    if coherence < 0:
        raise ValueError(f"coherence must be >= 0, got {coherence}")
    if output not in ("vote", "nearest"):
        raise ValueError(f"output must be 'vote' or 'nearest', got {output!r}")
    style, (target_h, target_w) = _validate(style, source_guides, target_guides, guide_weights,
                                            style_weight, patch_size, search_vote_iters, patchmatch_iters)
    source_h, source_w = style.shape[:2]
    p = int(patch_size)
    if initial_nnf is not None:
        initial_nnf = np.asarray(initial_nnf)
        if initial_nnf.shape != (target_h, target_w, 2) or not np.issubdtype(initial_nnf.dtype, np.integer):
            raise ValueError(f"initial_nnf is {initial_nnf.dtype} {initial_nnf.shape}, expected integer "
                             f"{(target_h, target_w, 2)}")
        levels = 1
    else:
        levels = pyramid_depth(min(source_h, target_h), min(source_w, target_w), p)
        if pyramid_levels is not None:
            levels = max(1, min(int(pyramid_levels), levels))

    source_planes = [_as_planes(g) for g in source_guides]
    target_planes = [_as_planes(g) for g in target_guides]
    # sqrt(weight / channels) per input: squared differences then carry weight / channels.
    scales = [float(np.sqrt(style_weight / 3.0))]
    scales += [float(np.sqrt(w / g.shape[2])) for w, g in zip(guide_weights, source_planes)]
    total_weight = style_weight + float(sum(guide_weights))
    if initial_nnf is not None:
        start = np.empty((target_h, target_w, 2), np.int32)
        start[..., 0] = np.clip(initial_nnf[..., 0], 0, source_w - 1)
        start[..., 1] = np.clip(initial_nnf[..., 1], 0, source_h - 1)
        # In the units of the error map: per patch pixel and per unit of weight.
        coherence_energy = np.float32(coherence * p * p * total_weight)
    else:
        start, coherence_energy = None, np.float32(0.0)
    solver = functools.partial(_search_and_vote, scales=scales, patch_size=p, uniformity=uniformity,
                               search_radius=search_radius, warm_start=initial_nnf is not None,
                               coherence=coherence_energy, search_vote_iters=search_vote_iters,
                               patchmatch_iters=patchmatch_iters, seed=seed)

    previous_threads = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        pyramid = _pyramid(style.astype(np.float32), source_planes, target_planes, (target_h, target_w), levels)
        nnf, estimate, energy = _coarse_to_fine(pyramid, solver, start, seed)
    finally:
        numba.set_num_threads(previous_threads)

    error = energy / np.float32(p * p * max(total_weight, 1e-12))
    if output == "nearest":
        image = style[nnf[..., 1], nnf[..., 0]]
    else:
        image = np.clip(np.rint(estimate), 0, 255).astype(np.uint8)
    return Synthesis(image=image, error=error.astype(np.float32), nnf=nnf)


def vote(image: np.ndarray, nnf: np.ndarray, patch_size: int, *, where: np.ndarray | None = None,
         out: np.ndarray | None = None) -> np.ndarray:
    """Read an image through a nearest-neighbour field the way synthesis does (its vote).

    Each target pixel becomes the mean of the ``image`` pixels that the ``p^2`` patches
    covering it predict, so content the field maps coherently is copied exactly and seams
    between differently mapped regions are smoothed.

    Parameters
    ----------
    image : ndarray (Hs, Ws) or (Hs, Ws, C), any channel count
        Lives in the field's source frame, e.g. a stylized frame, a weight map, or both.
    nnf : int (Ht, Wt, 2)
        ``(x, y)`` source patch centres, as in :attr:`Synthesis.nnf`.
    patch_size : int
        Odd patch side ``p`` the field was found with.
    where : bool (Ht, Wt), or int (K,) flat indices into it (``np.flatnonzero``), optional
        Vote only these pixels (cost in proportion to them); the others of ``out`` are left
        as they are.  Indices let a caller that votes one field several times find them once.
    out : float32 (Ht, Wt, C) or (Ht, Wt), optional
        Written in place (required with ``where``).

    Returns
    -------
    float32 (Ht, Wt, C), or (Ht, Wt) for a 2-D ``image``
    """
    planes = _as_planes(np.asarray(image, np.float32))
    source_h, source_w, channels = planes.shape
    nnf = np.asarray(nnf)
    if nnf.ndim != 3 or nnf.shape[2] != 2:
        raise ValueError(f"nnf must be (H, W, 2), got {nnf.shape}")
    if patch_size < 1 or patch_size % 2 == 0:
        raise ValueError(f"patch_size must be odd, got {patch_size}")
    r = patch_size // 2
    height, width = nnf.shape[:2]
    if where is not None:
        if out is None or out.shape[:2] != (height, width) or out.dtype != np.float32:
            raise ValueError("vote(where=...) needs out: float32, the target's size")
        where = np.asarray(where)
        if where.dtype == bool:
            if where.shape != (height, width):
                raise ValueError(f"vote where mask must be {(height, width)}, got {where.shape}")
            at = np.flatnonzero(where).astype(np.int32)
        else:
            at = np.asarray(where, np.int32).ravel()
            if at.size and (at.min() < 0 or at.max() >= height * width):
                raise ValueError(f"vote where indices must lie in 0..{height * width - 1}")
        _vote_at(np.ascontiguousarray(planes), np.ascontiguousarray(nnf), int(patch_size), at, _as_planes(out))
        return out
    field = np.empty(nnf.shape, np.int32)
    np.clip(nnf[..., 0], 0, source_w - 1, out=field[..., 0])
    np.clip(nnf[..., 1], 0, source_h - 1, out=field[..., 1])
    padded = np.pad(planes, ((r, r), (r, r), (0, 0)), mode="edge").reshape(source_h + 2 * r, -1)
    acc = np.empty((height + 2 * r, (width + 2 * r) * channels), np.float32)
    result = np.empty((height, width, channels), np.float32) if out is None else _as_planes(out)
    _vote(padded, field, int(patch_size), acc, result)
    return result[..., 0] if np.ndim(image) == 2 else result


@engine_cache.compile_session
def patchmatch(source_guides: Sequence[np.ndarray] | PatchFeatures, target_guides: Sequence[np.ndarray] | PatchFeatures,
               guide_weights: Sequence[float], *, initial_nnf: np.ndarray, patch_size: int, iterations: int,
               search_radius: int, seed: int, active: np.ndarray | None = None,
               threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Refine a nearest-neighbour field between two frames by PatchMatch, with no style.

    The engine's own sweep (:func:`synthesize` without the style term, the uniformity term or
    the pyramid): for a field that already holds the right structure (one from optical flow,
    or two composed), ``iterations`` sweeps of propagation and random search within
    ``search_radius`` of the current match.  Used to remap frames onto each other
    (:mod:`restyle.deflicker`).

    Parameters
    ----------
    source_guides, target_guides, guide_weights
        As in :func:`synthesize`; sources and targets must have the same size here.  Either
        may be a :func:`patch_features` of its guides instead.
    initial_nnf : int (H, W, 2)
        The starting field, ``(x, y)`` source centres; clamped to the source.
    patch_size : int
        Odd patch side.
    iterations : int
        Sweeps, alternating scan order.
    search_radius : int
        Largest random-search radius (radii halve down to 1).
    seed : int
        Key of the random search.
    active : bool (H, W), optional
        The pixels to search (default: all); the others keep their ``initial_nnf`` match, and
        propagate it to their neighbours.  Searching only where the initial field explains
        the target badly costs in proportion to those pixels.
    threads : int, optional
        Numba threads; the result does not depend on it.

    Returns
    -------
    nnf : int32 (H, W, 2)
    error : float32 (H, W)
        Each pixel's patch energy, per patch pixel and unit of weight (as :attr:`Synthesis.error`);
        NaN where not ``active``.
    """
    def packed(guides, which: str) -> PatchFeatures:
        if not isinstance(guides, PatchFeatures):
            return patch_features(guides, guide_weights, patch_size)
        if guides.guide_weights != tuple(float(w) for w in guide_weights) or guides.patch_size != patch_size:
            raise ValueError(f"patchmatch: the {which} features were packed with weights {guides.guide_weights} "
                             f"and patch_size {guides.patch_size}, not {tuple(guide_weights)} and {patch_size}")
        return guides

    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    source, target = packed(source_guides, "source"), packed(target_guides, "target")
    if source.channels != target.channels:
        raise ValueError(f"patchmatch: source guides have {source.channels} channels, target guides "
                         f"{target.channels}; each guide needs the same channel count in both")
    height, width = source.shape
    initial_nnf = np.asarray(initial_nnf)
    if initial_nnf.shape != (height, width, 2) or target.shape != (height, width):
        raise ValueError(f"patchmatch needs source, target and initial_nnf of one size {(height, width)}; got "
                         f"target {target.shape}, initial_nnf {initial_nnf.shape}")
    p = int(patch_size)
    r = p // 2
    S, T = source.planes, target.planes
    C = S.shape[1] // (width + 2 * r)
    nnf = np.empty((height, width, 2), np.int32)
    np.clip(initial_nnf[..., 0], 0, width - 1, out=nnf[..., 0])
    np.clip(initial_nnf[..., 1], 0, height - 1, out=nnf[..., 1])
    energy = np.full((height, width), np.nan, np.float32)
    if active is None:
        searched = np.ones((height, width), np.uint8)
    else:
        if np.shape(active) != (height, width):
            raise ValueError(f"patchmatch active mask must be {(height, width)}, got {np.shape(active)}")
        searched = np.ascontiguousarray(active, dtype=np.uint8)
    no_occupancy = np.zeros((height, width), np.int32)
    no_anchor = np.full((height, width, 2), -1, np.int32)
    previous_threads = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        for it in range(iterations):
            # Each accepted match's energy is exact (the SSD of a winner runs to the end), so
            # after the sweeps ``energy`` is that of the final field.
            _patchmatch_sweep(T, S, C, p, nnf, energy, no_occupancy, np.float32(0.0), it % 2 == 1, it == 0,
                              _key(seed, 0, 0, it), max(1, int(search_radius)), no_anchor, np.float32(0.0),
                              searched)
    finally:
        numba.set_num_threads(previous_threads)
    total_weight = max(float(sum(guide_weights)), 1e-12)
    return nnf, (energy / np.float32(p * p * total_weight)).astype(np.float32)


def _pyramid(style: np.ndarray, source_guides: list[np.ndarray], target_guides: list[np.ndarray],
             target_shape: tuple[int, int], levels: int) -> list[tuple]:
    """``(source style, source guides, target guides)`` per level, finest first, each level
    resampled from the one below it."""
    source_h, source_w = style.shape[:2]
    target_h, target_w = target_shape
    pyramid = [(style, source_guides, target_guides)]
    for level in range(1, levels):
        ssize = _level_size(source_w, source_h, level)
        tsize = _level_size(target_w, target_h, level)
        style = _downsample(style, ssize)
        source_guides = [_downsample(g, ssize) for g in source_guides]
        target_guides = [_downsample(g, tsize) for g in target_guides]
        pyramid.append((style, source_guides, target_guides))
    return pyramid


def _coarse_to_fine(pyramid: list[tuple], solver, nnf: np.ndarray | None, seed: int):
    """Run ``solver`` on every level of ``pyramid``, coarsest first (EbSynth's pyramid).

    The coarsest level starts from ``nnf``, or from a random field when it is None; each
    finer level from the NNF of the level below, upscaled 2x.  ``solver(level, source_style,
    source_guides, target_guides, nnf)`` returns ``(nnf, estimate, energy)``; those of the
    finest level are returned.
    """
    coarsest = len(pyramid) - 1
    for level in range(coarsest, -1, -1):
        source_style, source_guides, target_guides = pyramid[level]
        sh, sw = source_style.shape[:2]
        th, tw = target_guides[0].shape[:2] if target_guides else (sh, sw)
        if nnf is None:
            nnf = _random_nnf(th, tw, sh, sw, _key(seed, level, 0xA11CE))
        elif level < coarsest:
            nnf = _upscale_nnf(nnf, tw, th, sw, sh)
        nnf, estimate, energy = solver(level, source_style, source_guides, target_guides, nnf)
    return nnf, estimate, energy


def _search_and_vote(level: int, source_style: np.ndarray, source_guides: list[np.ndarray],
                     target_guides: list[np.ndarray], nnf: np.ndarray, *, scales: list[float], patch_size: int,
                     uniformity: float, search_radius: int | None, warm_start: bool, coherence: np.float32,
                     search_vote_iters: int, patchmatch_iters: int, seed: int):
    """One level of EbSynth's EM: ``search_vote_iters`` times {``patchmatch_iters``
    PatchMatch sweeps of ``nnf``, then a vote}.

    Parameters are those of :func:`synthesize`, with ``coherence`` already in energy units
    (0: no anchor) and ``warm_start`` telling that ``nnf`` came from the caller.

    Returns
    -------
    nnf : int32 (Ht, Wt, 2)
        ``nnf`` itself, updated in place.
    estimate : float32 (Ht, Wt, 3)
        The last vote: the target style.
    energy : float32 (Ht, Wt)
        Each pixel's patch energy E against ``estimate``.
    """
    p = patch_size
    r = p // 2
    sh, sw = source_style.shape[:2]
    th, tw = nnf.shape[:2]
    S = _features([source_style, *source_guides], scales, r)
    # The target's style channels are placeholders until the first vote fills them.
    T = _features([np.zeros((th, tw, 3), np.float32), *target_guides], scales, r)
    C = S.shape[1] // (sw + 2 * r)
    style_scale = np.float32(scales[0])

    style_padded = np.pad(source_style, ((r, r), (r, r), (0, 0)), mode="edge").reshape(sh + 2 * r, -1)
    votes = np.empty((th + 2 * r, (tw + 2 * r) * 3), np.float32)
    estimate = np.empty((th, tw, 3), np.float32)

    def vote():
        """The estimate from the field; it becomes the target's style channels (when the
        style has a weight: without, it is not part of the features)."""
        _vote(style_padded, nnf, p, votes, estimate)
        if style_scale != 0:
            _pack(T.reshape(th + 2 * r, tw + 2 * r, C), estimate, 0, style_scale, r)

    vote()
    energy = np.empty((th, tw), np.float32)
    occupancy = _occupancy(nnf, sh, sw, p)
    # lambda * occ(s) = lambda * occupancy(s) / p^2 / omega_best, omega_best = |T|/|S| p^2
    occ_weight = np.float32(uniformity * sw * sh / (p ** 4 * tw * th))
    if search_radius is not None:
        max_radius = max(1, int(search_radius * 0.5 ** level))
    elif warm_start:
        # The field is already right up to the motion error: skip EbSynth's three largest
        # radii, whose samples almost never win and, being cache misses, cost the most
        # (see benchmarks/bench_synthesis_engine.py).
        max_radius = max(sw, sh) // 8
    else:
        max_radius = max(sw, sh)
    # A match that keeps its starting place costs ``coherence`` less (see _patchmatch_sweep).
    anchor = nnf.copy() if coherence > 0 else np.full((th, tw, 2), -1, np.int32)
    everywhere = np.ones((th, tw), np.uint8)
    sweep = 0
    for em in range(search_vote_iters):
        for it in range(patchmatch_iters):
            _patchmatch_sweep(T, S, C, p, nnf, energy, occupancy, occ_weight, sweep % 2 == 1, it == 0,
                              _key(seed, level, em, it), max_radius, anchor, coherence, everywhere)
            sweep += 1
        vote()
    _patch_energies(T, S, C, p, nnf, energy)
    return nnf, estimate, energy
