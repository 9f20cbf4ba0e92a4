"""Video deflickering: guided patch blending, and blind deflickering with a flawed atlas.

**Guided patch blending** (the video deflicker of DiffSynth [1]_, FastBlend's "blend" mode):
a processed video ``P`` (per-frame stylized, restyled, colour-graded, ...) and the video it
was made from, the guide ``G``.  Every frame of a window ``[t - W, t + W]`` is *remapped*
onto frame ``t`` through a nearest-neighbour field (NNF) found by the synthesis engine's
PatchMatch (:func:`restyle.synthesis.synthesize`) on the guide, with the processed frames as
a lower-weight channel::

    E(t, s) = sum_patch  w_G/3 |G_t - G_s|^2  +  w_P/3 |P_t - P_s|^2

The remapped frames are averaged with a per-pixel weight ``w = exp(-e / error_scale)``,
where ``e`` is how badly the same remap explains the guide (its patch-mean squared error):
where content is occluded or the match is wrong, the neighbour drops out instead of ghosting.
Every field starts from the optical flow (adjacent frames) or from composing two fields
already found (farther frames), carried sub-pixel; PatchMatch searches only the pixels this
warm start explains badly (weight below 1/2).  Searching everywhere would cost 3x more and
make the blend *less* steady: it snaps well-followed content to whole-pixel matches, which
differ from frame to frame.

Averaging copies whose fine texture differs (a look that re-arranges its strokes, residual
misregistration) lowers the detail's contrast even where the average is steady.  The
average's detail (above a Gaussian of :data:`DETAIL_SIGMA`) is scaled back towards the
contrast the frames themselves have there -- the window average of their local detail
RMS, blended along with the colours, so the gain is as steady as the average -- by at most
``detail_gain`` (variance-preserving blending; 1: plain average).

Two forms compute the window average:

* ``exact``: every frame of the window remapped straight onto ``t`` -- ``2W`` remaps a frame,
  ``O(n W)``.
* ``table``: the remapping table of DiffSynth [1]_ (FastBlend's "fast" mode), ``O(n log W)``.
  Entry ``E(k, i)`` holds the weighted sum of the ``2^k`` frames ending at ``i``, remapped onto
  ``i``; ``E(k, i) = E(k-1, i) + remap_{i <- i - 2^(k-1)} E(k-1, i - 2^(k-1))``.  The window
  ``[t - W, t]`` is the binary decomposition of its length into ``O(log W)`` entries, each
  remapped onto ``t`` once; the same from the right, and the frame itself counted once.  A frame
  reaches ``t`` through a chain of up to ``log W`` remaps instead of one, so the two forms agree
  closely rather than exactly.

**Blind deflickering** (after Lei et al. [2]_), given only the flickering video:

1. *Correspondences flicker cannot fool*: flows and patch matches are computed on the
   locally normalised frames (:func:`flicker_invariant`: each channel minus its local mean,
   over its local standard deviation), which an exposure, white-balance or smooth shading
   change leaves unchanged.
2. *A flawed atlas* (:func:`shot_colour_maps`): one consistent reference of the shot, here
   built by chaining: neighbouring frames are related by a smooth colour map (a gain and a
   quadratic offset per channel, :func:`pair_colour_map`, fitted through the flow on the
   pixels that are neither occluded nor clipped), the maps are chained along the shot, and
   their average over the shot (or a window of it) is the reference -- the shot with its
   flicker averaged out.  It is flawed where the chain drifts or a fit fails; it is never
   trained, and it is a handful of numbers per frame.
3. *The filter* (:func:`apply_colour_map`): each frame is mapped onto that reference by its
   own smooth map, so it keeps all its structure and detail and takes the reference's colour
   and brightness; a map that smooth cannot copy anything else.
4. *Local refinement*: a short guided patch blend of the filtered frames (guide: the
   normalised frames) removes what flickers locally; only its scales above ``refine_sigma``
   are taken, so the frame's finest detail survives -- except where the frame clipped, whose
   detail is lost (:func:`clipped_detail`): there the whole blend is.

References
----------
.. [1] Z. Duan, L. You, C. Wang, C. Chen, Z. Wu, W. Qian, J. Huang, "DiffSynth: Latent
       In-Iteration Deflickering for Realistic Video Synthesis", 2023. arXiv:2308.03463
.. [2] C. Lei, X. Ren, Z. Zhang, Q. Chen, "Blind Video Deflickering by Neural Filtering with a
       Flawed Atlas", CVPR 2023. arXiv:2303.08120
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit, prange

# Registers restyle's cache locator; must come before the @njit(cache=True) kernels below.
from restyle import engine_cache
from restyle.flow import compute_flow, occlusion_mask, remap, sampling_grid, warp
from restyle.io import LazyMap
from restyle.propagate import carry_positions


#: How the window average is computed (see the module docstring).
BLEND_FORMS = ("exact", "table")

#: Pixels: the blend's detail whose contrast ``detail_gain`` restores lies above a Gaussian
#: of this sigma; :data:`DETAIL_BOX` is the side of the box its local RMS is measured over.
DETAIL_SIGMA = 1.5
DETAIL_BOX = 9


@dataclass(frozen=True)
class RemapSettings:
    """How one frame is remapped onto another (the ``deflicker`` section of the config).

    Attributes
    ----------
    guide_weight, style_weight : float
        ``w_G`` and ``w_P`` of the matching energy.
    patch_size : int
        Odd patch side.
    patchmatch_iters : int
        PatchMatch sweeps over the pixels the warm start explains badly.
    search_radius : int
        Largest random-search radius of those sweeps, in pixels: the warm start is already
        within a few pixels, and far samples cost the most.
    error_scale : float
        A remapped pixel whose patch explains the guide with mean squared difference ``e``
        (0..255 units) is weighted ``exp(-e / error_scale)``.
    flow_preset : str
        DIS preset of the flows that start the fields between neighbouring frames.
    seed : int
        Key of the random search; combined with the frames' absolute numbers, so a chunk of
        a video gets the same fields as the whole video.
    detail_gain : float >= 1
        Largest factor the blend's fine detail is scaled by to give it back the contrast the
        frames have (see the module docstring); 1 keeps the plain weighted average.
    """

    guide_weight: float
    style_weight: float
    patch_size: int
    patchmatch_iters: int
    search_radius: int
    error_scale: float
    flow_preset: str
    seed: int
    detail_gain: float = 1.0

    def __post_init__(self):
        if self.patch_size < 3 or self.patch_size % 2 == 0:
            raise ValueError(f"deflicker patch_size must be odd and >= 3, got {self.patch_size}")
        if self.search_radius < 1:
            raise ValueError(f"deflicker search_radius must be >= 1, got {self.search_radius}")
        if self.patchmatch_iters < 1:
            raise ValueError(f"deflicker patchmatch_iters must be >= 1, got {self.patchmatch_iters}")
        if not self.detail_gain >= 1:
            raise ValueError(f"deflicker detail_gain must be >= 1, got {self.detail_gain}")
        if not self.error_scale > 0:
            raise ValueError(f"deflicker error_scale must be > 0, got {self.error_scale}")
        if self.guide_weight < 0 or self.style_weight < 0 or self.guide_weight + self.style_weight == 0:
            raise ValueError(f"deflicker weights must be >= 0 and not both 0, got guide_weight="
                             f"{self.guide_weight}, style_weight={self.style_weight}")


def check_window(window: int, what: str = "deflicker window") -> int:
    """``window`` as an int >= 1, or a one-line ValueError saying what to use."""
    if isinstance(window, bool) or int(window) != window or window < 1:
        raise ValueError(f"{what} must be a whole number of frames >= 1 (frames blended on each side), "
                         f"got {window!r}")
    return int(window)


def _check_clip(name: str, frames: Sequence[np.ndarray], like: Sequence[np.ndarray] | None = None) -> tuple[int, int]:
    if len(frames) == 0:
        raise ValueError(f"{name}: no frames")
    shape = np.shape(frames[0])
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"{name}: frames must be (H, W, 3) RGB, got {shape}")
    if like is not None:
        if len(like) != len(frames):
            raise ValueError(f"{name} has {len(frames)} frames but the processed video has {len(like)}; "
                             "the guide must be the video the processed one was made from, frame for frame")
        if np.shape(like[0])[:2] != shape[:2]:
            raise ValueError(f"{name} frames are {shape[1]}x{shape[0]} but the processed ones are "
                             f"{np.shape(like[0])[1]}x{np.shape(like[0])[0]}; give both at the same size")
    return shape[:2]


@dataclass(frozen=True)
class _Field:
    """A remap ``s -> t``: per pixel of ``t`` its source in ``s``.

    ``position`` is the sub-pixel source position, float32 (H, W, 2): where the motion
    followed by the warm start says wherever PatchMatch kept that match, the patch centre
    elsewhere; ``nnf`` the PatchMatch field (patch centres), whose patches are voted at the
    pixels ``moved`` (flat indices) where it left the warm start; both None when every pixel
    follows the motion.  ``weight`` is the blend weight, uint8 in 1/255 steps
    (:func:`_stored_weight`).
    """

    nnf: np.ndarray | None
    position: np.ndarray
    moved: np.ndarray | None
    weight: np.ndarray | None


def _weight_of(field: _Field) -> np.ndarray:
    return field.weight.astype(np.float32) * np.float32(1.0 / 255.0)


@njit(cache=True, parallel=True)
def _guide_residual(matched, target, out):
    """Per pixel, the mean over the colour channels of ``(matched - target)^2``."""
    height, width = out.shape
    for y in prange(height):
        for x in range(width):
            e = np.float32(0.0)
            for c in range(3):
                d = matched[y, x, c] - target[y, x, c]
                e += d * d
            out[y, x] = e * np.float32(1.0 / 3.0)


@njit(cache=True, parallel=True)
def _stored_weight(error, inverse_scale, out):
    """A field's blend weights ``exp(-error * inverse_scale)`` in 1/255 steps, uint8, into
    ``out``: the fields of a window are much of what a job at 1080p holds, and a blend weight
    needs no finer steps."""
    height, width = error.shape
    for y in prange(height):
        for x in range(width):
            out[y, x] = np.uint8(np.exp(-error[y, x] * inverse_scale) * np.float32(255.0) + np.float32(0.5))


@njit(cache=True, parallel=True)
def _nearest_pixel(position, out):
    """``position`` rounded to the nearest pixel inside the frame, int32."""
    height, width = position.shape[:2]
    for y in prange(height):
        for x in range(width):
            out[y, x, 0] = min(max(np.int32(np.rint(position[y, x, 0])), 0), width - 1)
            out[y, x, 1] = min(max(np.int32(np.rint(position[y, x, 1])), 0), height - 1)


@njit(cache=True)
def _take_moves(nnf, start, position, moved):
    """Where ``nnf`` left ``start``: write its centre into ``position`` and the pixel's flat
    index into ``moved``; returns how many."""
    height, width = start.shape[:2]
    count = 0
    for y in range(height):
        for x in range(width):
            if nnf[y, x, 0] != start[y, x, 0] or nnf[y, x, 1] != start[y, x, 1]:
                position[y, x, 0] = np.float32(nnf[y, x, 0])
                position[y, x, 1] = np.float32(nnf[y, x, 1])
                moved[count] = y * width + x
                count += 1
    return count


#: Bytes of packed PatchMatch features kept: the target's, and sources' (each frame is a
#: source of ~log W fields) up to this much; at 1080p one frame's take 50 MB, kept by none.
_FEATURE_BYTES = 32 << 20


class _Remapper:
    """Fields between frames of one clip, found on demand and kept while needed.

    ``remap(values, t, s)`` brings ``values`` (living in frame ``s``) onto frame ``t`` and
    returns them with the remap's weight map.  A field ``t -> s`` starts from the flow when
    the frames are neighbours, else from composing ``t -> m`` and ``m -> s`` for the ``m``
    the form's ``split`` names, and is refined by PatchMatch.  Positions are carried
    sub-pixel, so content that simply moves is resampled at its exact place: averaging copies
    snapped to the pixel grid would blur the result by up to half a pixel.
    """

    def __init__(self, processed, guide, settings: RemapSettings, first_index: int, split, threads):
        self.processed, self.guide, self.settings = processed, guide, settings
        self.first_index, self.split, self.threads = first_index, split, threads
        self.fields: dict[tuple[int, int], _Field] = {}
        self._gray: dict[int, np.ndarray] = {}
        self._target: tuple[int, np.ndarray, np.ndarray] | None = None
        self._target_features = None
        self._source_features: dict[int, object] = {}

    def _gray_guide(self, t: int) -> np.ndarray:
        if t not in self._gray:
            self._gray[t] = cv2.cvtColor(np.clip(np.asarray(self.guide[t]), 0, 255).astype(np.uint8),
                                         cv2.COLOR_RGB2GRAY)
        return self._gray[t]

    def _target_frames(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Guide and processed frame ``t`` as float32, kept for the fields onto the same target
        that follow (a visit finds several); a source's are converted where used."""
        if self._target is None or self._target[0] != t:
            self._target = t, np.asarray(self.guide[t], np.float32), np.asarray(self.processed[t], np.float32)
        return self._target[1:]

    def _features(self, t: int, as_target: bool):
        """Frame ``t``'s guide and processed frame packed for PatchMatch: the target's kept for
        its visit, sources' while they fit :data:`_FEATURE_BYTES`."""
        from restyle.synthesis import patch_features

        if self._target_features is not None and self._target_features[0] == t:
            return self._target_features[1]
        if t in self._source_features:
            return self._source_features[t]
        st = self.settings
        if as_target:
            images = self._target_frames(t)
        else:
            images = np.asarray(self.guide[t], np.float32), self.processed[t]
        features = patch_features(images, [st.guide_weight, st.style_weight], st.patch_size)
        if features.planes.nbytes > _FEATURE_BYTES:
            return features  # at 1080p: packed again where used, for a job's memory bound
        if as_target:
            self._target_features = t, features
        else:
            self._source_features[t] = features
            while sum(f.planes.nbytes for f in self._source_features.values()) > _FEATURE_BYTES:
                del self._source_features[next(iter(self._source_features))]
        return features

    def field(self, t: int, s: int) -> _Field:
        """The remap ``s -> t``, cached."""
        key = (t, s)
        if key not in self.fields:
            if abs(t - s) == 1:
                flow = compute_flow(self._gray_guide(t), self._gray_guide(s), self.settings.flow_preset)
                map_x, map_y = sampling_grid(flow)
                position = np.stack([map_x, map_y], axis=-1)
            else:
                m = self.split(t, s)
                first, second = self.field(t, m), self.field(m, s)
                position = carry_positions(second.position, first.position[..., 0], first.position[..., 1])
            self.fields[key] = self._refine(t, s, position)
        return self.fields[key]

    def _refine(self, t: int, s: int, position: np.ndarray) -> _Field:
        """The field from its warm start ``position``, searched by PatchMatch where the warm
        start explains the guide badly (its weight below 1/2): elsewhere the motion is right,
        and searching there costs the most and changes the least."""
        from restyle.synthesis import patchmatch

        source_guide = np.asarray(self.guide[s], np.float32)
        matched = self._apply(_Field(None, position, None, None), source_guide)
        error = self._error(t, matched)
        active = error > np.float32(self.settings.error_scale * np.log(2.0))  # weight below 1/2
        if not active.any():
            return _Field(None, position, None, self._weight(error))
        st = self.settings
        start = np.empty(position.shape, np.int32)
        _nearest_pixel(position, start)
        nnf, _ = patchmatch(self._features(s, as_target=False), self._features(t, as_target=True),
                            [st.guide_weight, st.style_weight], initial_nnf=start, patch_size=st.patch_size,
                            iterations=st.patchmatch_iters, search_radius=st.search_radius,
                            seed=_pair_seed(st.seed, self.first_index + t, self.first_index + s),
                            active=active, threads=self.threads)
        position = position.copy()
        moved = np.empty(position.shape[0] * position.shape[1], np.int32)
        moved = moved[:_take_moves(nnf, start, position, moved)].copy()
        if not len(moved):
            return _Field(None, position, None, self._weight(error))
        # Kept compact: the fields of a window are much of what a job at 1080p holds.
        nnf = nnf.astype(np.int16) if max(position.shape[:2]) < 32768 else nnf
        field = _Field(nnf, position, moved, None)
        # The guide as the final field matches it: the warm start's where it was kept.
        self._vote(field, source_guide, matched)
        return dataclasses.replace(field, weight=self._weight(self._error(t, matched)))

    def _error(self, t: int, matched: np.ndarray) -> np.ndarray:
        """How badly ``matched``, the guide of ``s`` brought onto ``t`` by a field, explains the
        guide of ``t``: the patch mean of the squared colour difference.  The guide alone: the
        processed frames differ where they flicker, which is what the blend must average out,
        not a sign of a wrong match."""
        residual = np.empty(matched.shape[:2], np.float32)
        _guide_residual(matched, self._target_frames(t)[0], residual)
        return cv2.blur(residual, (self.settings.patch_size, self.settings.patch_size))

    def _weight(self, error: np.ndarray) -> np.ndarray:
        """The blend weights of a field from its :meth:`_error`, stored (uint8 in 1/255 steps)."""
        weight = np.empty(error.shape, np.uint8)
        _stored_weight(error, np.float32(1.0 / self.settings.error_scale), weight)
        return weight

    def _vote(self, field: _Field, values: np.ndarray, out: np.ndarray) -> None:
        from restyle.synthesis import vote

        vote(values, field.nnf, self.settings.patch_size, where=field.moved, out=out)

    def _apply(self, field: _Field, values: np.ndarray, interpolation: str = "cubic") -> np.ndarray:
        """``values`` of frame ``s`` brought onto ``t``: resampled at the sub-pixel positions
        where the field follows the motion, the vote of the matched patches elsewhere."""
        values = np.asarray(values, np.float32)
        # At most 4 channels (OpenCV's cubic remap): colours and the detail RMS; a table
        # entry's weights are remapped on their own.
        out = remap(values, field.position, None, interpolation).reshape(values.shape)
        if field.nnf is not None:
            self._vote(field, values, out)
        return out

    def remap(self, values: np.ndarray, t: int, s: int) -> tuple[np.ndarray, np.ndarray]:
        f = self.field(t, s)
        return self._apply(f, values), _weight_of(f)

    def remap_sums(self, sums: tuple[np.ndarray, np.ndarray], t: int, s: int):
        """:meth:`remap` of a table entry's weighted sums and their weights, ``((sums,
        weights), remap's weight)``."""
        f = self.field(t, s)
        # Weights are smooth and must stay >= 0: bilinear (a third of a cubic's cost, no overshoot).
        weights = self._apply(f, sums[1][..., None], "linear")[..., 0]
        return (self._apply(f, sums[0]), weights), _weight_of(f)

    def forget(self, keep) -> None:
        """Drop the fields ``(t, s)`` for which ``keep(t, s)`` is False."""
        self.fields = {k: v for k, v in self.fields.items() if keep(*k)}
        self._gray.clear()
        self._target = None
        self._target_features = None


class _WithDetail:
    """The processed frames, float32, each with a 4th channel: its local detail RMS (above a
    Gaussian of :data:`DETAIL_SIGMA`, over :data:`DETAIL_BOX`), blended along with the colours
    so that the contrast the blend's detail is restored to is itself a window average."""

    def __init__(self, processed):
        self.processed = processed
        self._last: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.processed)

    def __getitem__(self, t: int) -> np.ndarray:
        if self._last is None or self._last[0] != t:
            frame = np.asarray(self.processed[t], np.float32)
            self._last = t, np.concatenate([frame, _detail_rms(frame)[..., None]], axis=2)
        return self._last[1]


def _detail(image: np.ndarray) -> np.ndarray:
    return image - cv2.GaussianBlur(image, (0, 0), DETAIL_SIGMA)


def _local_rms(detail: np.ndarray) -> np.ndarray:
    energy = cv2.transform(detail * detail, np.full((1, detail.shape[2]), 1.0 / detail.shape[2]))
    return np.sqrt(np.maximum(cv2.blur(energy, (DETAIL_BOX, DETAIL_BOX)), 0.0))


def _detail_rms(image: np.ndarray) -> np.ndarray:
    return _local_rms(_detail(image))


def _restore_detail(mean: np.ndarray, detail_rms: np.ndarray, max_gain: float) -> np.ndarray:
    """``mean`` (H, W, 3) with its detail scaled towards the local RMS ``detail_rms`` (H, W),
    by a gain between 1 and ``max_gain``: averaging copies whose fine texture differs lowers
    its contrast, and only that loss is given back, never more contrast than the frames had."""
    detail = _detail(mean)
    own_rms = _local_rms(detail)
    # The small constant keeps flat regions (both near 0) at gain 1.
    gain = np.clip((detail_rms + 0.03) / (own_rms + 0.03), 1.0, max_gain)
    return mean + (gain[..., None] - 1.0) * detail


def _pair_seed(seed: int, t: int, s: int) -> int:
    return (int(seed) * 1_000_003 + int(t) * 7_919 + int(s) * 104_729) & 0x7FFFFFFF


def _one_step_split(t: int, s: int) -> int:
    """Exact form: ``t -> s`` through the frame next to ``s``, whose field ``t -> s±1`` the
    previous remap of the same target found."""
    return s + (1 if t > s else -1)


def _power_of_two_split(t: int, s: int) -> int:
    """Table form: ``t -> s`` through ``t ∓ 2^j``, the largest power of two below ``|t - s|``:
    the fields the table's entries were built with."""
    distance = abs(t - s)
    step = 1 << ((distance - 1).bit_length() - 1)
    return t - step if t > s else t + step


def _exact_side(remapper: _Remapper, processed, targets, window: int, direction: int, n: int):
    """Per target, in the order the targets complete, the weighted sum (numerator (H, W, 3),
    denominator (H, W)) of its side of the window, itself included: ``direction`` -1 looks
    at earlier frames, +1 at later ones."""
    for t in sorted(targets, reverse=direction > 0):
        numerator = np.asarray(processed[t], np.float32).copy()
        denominator = np.ones(numerator.shape[:2], np.float32)
        for d in range(1, window + 1):
            s = t + direction * d
            if not 0 <= s < n:
                break
            remapped, weight = remapper.remap(processed[s], t, s)
            numerator += remapped * weight[..., None]
            denominator += weight
            if d >= 3:  # the field t -> s - 1 has been composed into t -> s: not read again
                remapper.fields.pop((t, s - direction), None)
        yield t, numerator, denominator
        # Only the fields between neighbours are reused, by the next targets.
        remapper.forget(lambda a, b, t=t: abs(a - b) == 1 and abs(a - t) <= window + 1)


#: Table entries keep their weighted means in 1/256 of a level (uint16) beside the weight.
_FIXED_POINT = 256.0


@njit(cache=True, parallel=True)
def _to_entry(sums, weight, means):
    height, width, channels = means.shape
    for y in prange(height):
        for x in range(width):
            scale = np.float32(_FIXED_POINT) / max(weight[y, x], np.float32(1e-6))
            for c in range(channels):
                v = sums[y, x, c] * scale + np.float32(0.5)
                means[y, x, c] = np.uint16(min(max(v, np.float32(0.0)), np.float32(65535.0)))


@njit(cache=True, parallel=True)
def _from_entry(means, weight, sums):
    height, width, channels = means.shape
    for y in prange(height):
        for x in range(width):
            scale = weight[y, x] * np.float32(1.0 / _FIXED_POINT)
            for c in range(channels):
                sums[y, x, c] = np.float32(means[y, x, c]) * scale


@njit(cache=True, parallel=True)
def _accumulate(total, total_weight, values, values_weight, weight):
    """``total += values * weight``, ``total_weight += values_weight * weight`` (weight per
    pixel), in place."""
    height, width, channels = values.shape
    for y in prange(height):
        for x in range(width):
            w = weight[y, x]
            for c in range(channels):
                total[y, x, c] += values[y, x, c] * w
            total_weight[y, x] += values_weight[y, x] * w


engine_cache.watch(_to_entry, _from_entry, _accumulate, _guide_residual, _stored_weight, _nearest_pixel, _take_moves, what="the deflicker kernels", takes=", a few seconds")


def _stored(sums: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A table entry -- weighted sums (H, W, C) and the sum of weights (H, W), float32 -- as
    uint16 fixed-point means and the weight: less memory, and a mean in 0..255 kept to 1/256
    of a level."""
    means = np.empty(sums.shape, np.uint16)
    _to_entry(np.ascontiguousarray(sums, np.float32), weight, means)
    return means, np.array(weight, np.float32)


def _sums(stored: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The weighted sums of a :func:`_stored` entry and its weight (the entry's own array:
    copy it before adding to it), float32."""
    means, weight = stored
    out = np.empty(means.shape, np.float32)
    _from_entry(means, weight, out)
    return out, weight


def _field_lifetimes(levels: int, query_offset: dict[int, int]) -> dict[int, int]:
    """For the table form: per distance ``d``, the largest travel ``a - i`` at which frame
    ``i`` reads a field ``a -> a + d`` (found by walking the requests of a long run of frames
    with every field kept, away from where the run starts).  A field is needed until then,
    and not after."""
    requests = [1 << (k - 1) for k in range(1, levels)] + [off for off in query_offset.values() if off > 0]
    span = 4 * (1 << levels)
    found: set[tuple[int, int]] = set()
    lifetime: dict[int, int] = {}

    def field(t: int, s: int, i: int) -> None:
        distance = s - t
        if i <= span // 2:  # the first frames of the walk find nothing made yet
            lifetime[distance] = max(lifetime.get(distance, 0), t - i)
        if (t, s) in found:
            return
        found.add((t, s))
        if distance > 1:
            m = _power_of_two_split(t, s)
            field(t, m, i)
            field(m, s, i)

    for i in range(span, -1, -1):
        for distance in requests:
            field(i, i + distance, i)
    return lifetime


def _table_side(remapper: _Remapper, processed, targets, window: int, direction: int, n: int):
    """The same as :func:`_exact_side` from the remapping table (see the module docstring).

    Frames are visited in ``-direction`` order from the far end of the context; entry
    ``E(k, i)`` sums the ``2^k`` frames ``i, i + direction, ...`` remapped onto ``i``.  Each
    entry has at most two readers -- the frame ``2^k`` further on, building ``E(k+1)``, and the
    frame whose window query takes a node there -- and is dropped once both have read it, so
    memory grows with the window, not with the clip.
    """
    length = window + 1
    levels = length.bit_length()  # entries 0 .. levels-1: 2^(levels-1) <= length
    # The query of frame i takes, for each bit k set in ``length``, entry E(k, i + direction * offset).
    query_offset, offset = {}, 0
    for k in range(levels - 1, -1, -1):
        if length >> k & 1:
            query_offset[k] = offset
            offset += 1 << k

    def last_reader(k: int) -> int:
        """How many frames of travel past frame j entry E(k, j) is last read."""
        builder = (1 << k) if k + 1 < levels else 0
        return max(builder, query_offset.get(k, 0))

    # Entries are stored as fixed-point weighted means and weights (_stored): at 1080p the
    # window's entries are what a job holds most of.
    lifetime = _field_lifetimes(levels, query_offset)
    table: dict[tuple[int, int], np.ndarray] = {}
    last_target = min(targets) if direction > 0 else max(targets)
    first = n - 1 if direction > 0 else 0
    for i in range(first, last_target - direction, -direction):
        base = np.asarray(processed[i], np.float32)
        table[(0, i)] = _stored(base, np.ones(base.shape[:2], np.float32))
        for k in range(1, levels):
            s = i + direction * (1 << (k - 1))
            if not 0 <= s < n:  # past the end of the context: a shorter block
                table[(k, i)] = table[(k - 1, i)]
                continue
            (remapped, remapped_weight), weight = remapper.remap_sums(_sums(table[(k - 1, s)]), i, s)
            total, total_weight = _sums(table[(k - 1, i)])
            total_weight = total_weight.copy()
            _accumulate(total, total_weight, remapped, remapped_weight, weight)
            table[(k, i)] = _stored(total, total_weight)
        if i in targets:
            total = None
            for k, off in query_offset.items():
                s = i + direction * off
                if not 0 <= s < n:
                    continue
                node = _sums(table[(k, s)])
                if s != i:
                    (remapped, remapped_weight), weight = remapper.remap_sums(node, i, s)
                    node = np.zeros_like(remapped), np.zeros_like(remapped_weight)
                    _accumulate(*node, remapped, remapped_weight, weight)
                if total is None:
                    total = node
                else:
                    total = total[0] + node[0], total[1] + node[1]
            yield i, total[0], total[1]
        # Frame i has travelled (j - i) * direction frames past entry j.
        table = {(k, j): v for (k, j), v in table.items() if (j - i) * direction < last_reader(k)}
        # A field a -> b is kept while a later frame will still read it.
        remapper.forget(lambda a, b, i=i: (a - i) * direction < lifetime.get(abs(a - b), 0))


def patch_blend(processed: Sequence[np.ndarray], guide: Sequence[np.ndarray], *, window: int, form: str,
                settings: RemapSettings, targets: Sequence[int] | None = None, first_index: int = 0,
                threads: int | None = None) -> list[np.ndarray]:
    """Deflicker a processed video by averaging its frames remapped onto each other.

    Parameters
    ----------
    processed : sequence of ndarray, uint8 (H, W, 3)
        The flickering processed frames (any indexable sequence; a lazy reader works).
    guide : sequence of ndarray, (H, W, 3) uint8 or float in 0..255 units
        What matches are found on: the video ``processed`` was made from, frame for frame
        (or, for blind deflickering, the processed frames' :func:`flicker_invariant` form).
    window : int >= 1
        Frames blended on each side of a frame (FastBlend's default: 15).
    form : {"exact", "table"}
        See the module docstring: ``2W`` remaps per frame, or ``O(log W)``.
    settings : RemapSettings
    targets : sequence of int, optional
        Indices of the frames to return (default: all).  The others are context: a chunk of a
        longer video passes its own frames plus ``window`` frames either side, and gets the
        bytes the whole video would give there.
    first_index : int
        Absolute number of ``processed[0]`` in its video (keys the random search).
    threads : int, optional
        Engine threads; the result does not depend on it.

    Returns
    -------
    list of ndarray, uint8 (H, W, 3), one per target, in target order.  :func:`iter_patch_blend`
    gives them one at a time instead, for a caller that writes them as they come.

    References
    ----------
    Duan et al. 2023, arXiv:2308.03463 (patch blending and its remapping table).
    """
    done = dict(iter_patch_blend(processed, guide, window=window, form=form, settings=settings, targets=targets,
                                 first_index=first_index, threads=threads))
    return [done[int(t)] for t in (range(len(processed)) if targets is None else targets)]


#: A lazy reader of a chunk's frames holds them all when they take no more than this; each
#: side of the blend walks the whole chunk, so that saves decoding every frame twice.
HOLD_ALL_BYTES = 64 << 20


def frames_held(window: int, form: str, frame_shape: tuple[int, ...], n_frames: int) -> int:
    """How many decoded frames (of ``frame_shape``, uint8) a lazy reader of ``n_frames``
    processed frames or guide frames should keep for :func:`iter_patch_blend`: all of them
    when they take at most :data:`HOLD_ALL_BYTES`, else the fewest that decode none twice per
    side -- the exact form reads ``window`` frames ahead of its target, the table form only as
    far as its longest field's source (half the window, rounded to a power of two).  A job
    at 1080p then holds a few frames, not its chunk."""
    window = check_window(window)
    if n_frames * int(np.prod(frame_shape)) <= HOLD_ALL_BYTES:
        return n_frames
    if form == "exact":
        return window + 3
    return (1 << max((window + 1).bit_length() - 2, 0)) + 3


def iter_patch_blend(processed: Sequence[np.ndarray], guide: Sequence[np.ndarray], *, window: int, form: str,
                     settings: RemapSettings, targets: Sequence[int] | None = None, first_index: int = 0,
                     threads: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`patch_blend` as ``(target, frame)`` pairs in increasing target order, each as
    soon as it is done.

    The later side of every window is computed first, for all targets, and kept in a
    temporary folder until the earlier side completes the target: held in memory, it would be
    a chunk's worth of frames (0.6 GB for 40 frames at 1920x1080) on top of the window's.
    """
    window = check_window(window)
    if form not in BLEND_FORMS:
        raise ValueError(f"unknown deflicker form {form!r}; use one of {list(BLEND_FORMS)}")
    _check_clip("processed video", processed)
    _check_clip("guide", guide, like=processed)
    n = len(processed)
    wanted = set(range(n) if targets is None else (int(t) for t in targets))
    if any(not 0 <= t < n for t in wanted):
        raise ValueError(f"targets must lie in 0..{n - 1}")
    if not wanted:
        return
    split = _one_step_split if form == "exact" else _power_of_two_split
    side = _exact_side if form == "exact" else _table_side
    restore = settings.detail_gain > 1.0
    # What is blended: the colours, and with detail restoration the frames' detail RMS.
    values = _WithDetail(processed) if restore else processed

    def run(direction):
        # Matched on the processed frames themselves; the values only ride along.
        return side(_Remapper(processed, guide, settings, first_index, split, threads), values, wanted,
                    window, direction, n)

    with tempfile.TemporaryDirectory(prefix="restyle-blend-") as spill:
        # The later side as stored entries (means and weights); the earlier side then completes the
        # targets in order and merges them, the frame itself counted once.
        for t, numerator, denominator in run(1):
            means, weight = _stored(numerator, denominator)
            np.save(os.path.join(spill, f"{t}-means.npy"), means)
            np.save(os.path.join(spill, f"{t}-weight.npy"), weight)
        for t, numerator, denominator in run(-1):
            paths = [os.path.join(spill, f"{t}-{part}.npy") for part in ("means", "weight")]
            later, later_weight = _sums(tuple(np.load(path) for path in paths))
            for path in paths:
                os.remove(path)
            own = np.asarray(values[t], np.float32)
            total = numerator + later - own
            mean = total / (denominator + later_weight - 1.0)[..., None]
            if restore:
                mean = _restore_detail(mean[..., :3], mean[..., 3], settings.detail_gain)
            yield t, np.clip(np.rint(mean), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------
# Blind deflickering
# --------------------------------------------------------------------------------------

def flicker_invariant(frame: np.ndarray, sigma: float = 8.0, floor: float = 8.0, as_uint8: bool = False) -> np.ndarray:
    """The frame with each channel's local mean and contrast taken out: what flicker keeps.

    ``N = 128 + 48 (I - mu) / sqrt(var + floor^2)`` per channel, with ``mu`` and ``var`` the
    Gaussian-weighted (``sigma``) local mean and variance.  A gain and offset that vary slowly
    across the frame (exposure, white balance, black level, shading) cancel out, so flows and
    patch matches on ``N`` follow the content, not the flicker.  ``floor`` (0..255 units) keeps
    flat, noisy regions from being amplified.

    Returns
    -------
    float32 (H, W, 3), values around 0..255; with ``as_uint8``, rounded and clipped to uint8
    (for tools that take images: optical flow, shot-cut detection)
    """
    image = np.asarray(frame, np.float32)
    mean = cv2.GaussianBlur(image, (0, 0), sigma)
    variance = np.maximum(cv2.GaussianBlur(image * image, (0, 0), sigma) - mean * mean, 0.0)
    normalised = 128.0 + 48.0 * (image - mean) / np.sqrt(variance + np.float32(floor * floor))
    return np.clip(np.rint(normalised), 0, 255).astype(np.uint8) if as_uint8 else normalised


def _reduced_size(height: int, width: int, max_width: int) -> tuple[int, int]:
    if width <= max_width:
        return height, width
    return max(8, round(height * max_width / width)), max_width


@dataclass(frozen=True)
class BlindSettings:
    """The blind method's own options (the ``deflicker.blind`` section of the config).

    Attributes
    ----------
    atlas_width : int
        Width the shot's colour maps are fitted at (they are smooth: coarse scales suffice).
    atlas_window : int or None
        Frames each side whose maps are averaged into a frame's reference; None: the whole
        shot.  A window keeps slow, intended changes of colour or brightness.
    refine_window : int
        Frames each side of the local refinement; 0 skips it.
    refine_sigma : float
        Pixels: finer detail than this is kept from the filtered frame during refinement.
    error_scale : float
        :attr:`RemapSettings.error_scale` of the matches on flicker-invariant frames, whose
        differences are in units of local contrast, larger than colour differences.
    """

    atlas_width: int
    atlas_window: int | None
    refine_window: int
    refine_sigma: float
    error_scale: float


def _blind_matching(settings: RemapSettings, blind: BlindSettings) -> RemapSettings:
    """Matching on flicker-invariant frames: on them alone (the frames themselves flicker),
    with the blind method's error scale (their differences are in units of local contrast)."""
    # No detail restoration: the refinement takes only scales coarser than the detail.
    return dataclasses.replace(settings, style_weight=0.0, guide_weight=max(settings.guide_weight, 1e-6),
                               error_scale=blind.error_scale, detail_gain=1.0)


def _smooth_basis(height: int, width: int) -> np.ndarray:
    """(1, x, y, x y, x^2, y^2) over the frame, x and y in [-1/2, 1/2]: (H * W, 6)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    x = (x + 0.5) / width - 0.5
    y = (y + 0.5) / height - 0.5
    return np.stack([np.ones_like(x), x, y, x * y, x * x, y * y], axis=-1).reshape(-1, 6)


#: The colour map that changes nothing: per channel gain 1, offset 0 (see :func:`colour_transform`).
IDENTITY_MAP = np.tile(np.eye(1, 7), (3, 1))


def colour_transform(frame: np.ndarray, reference: np.ndarray, *, valid: np.ndarray | None = None,
                     iterations: int = 4) -> np.ndarray:
    """The smooth per-channel colour map that takes ``reference`` to ``frame``.

    Per channel ``c``, ``I_c = g_c A_c + b_c(x, y)``: a gain and a quadratic offset over the
    frame, fitted by iteratively reweighted least squares (Huber weights) so that pixels where
    the two disagree for other reasons -- a moving object, a bad match -- barely pull the fit.
    Exposure, white balance, black level and shading are such maps (:func:`apply_colour_map`
    applies one).  The gain is one number per channel: a gain that varied across the frame as
    well would trade off against the offset wherever a region's colours span a narrow range,
    and maps chained over a shot would drift.

    Parameters
    ----------
    frame, reference : (h, w, 3) float, the same size (small: the fit needs few pixels)
    valid : bool (h, w), optional
        The pixels to fit on (default: all), e.g. without occlusions and clipped pixels.

    Returns
    -------
    float64 (3, 7): per channel the gain, then the offset's coefficients on
    ``(1, x, y, x y, x^2, y^2)``, ``x`` and ``y`` in [-1/2, 1/2] across the frame.
    """
    frame = np.asarray(frame, np.float64)
    reference = np.asarray(reference, np.float64)
    height, width = frame.shape[:2]
    keep = np.ones((height, width), bool) if valid is None else np.asarray(valid, bool)
    if keep.sum() < 64:  # too little left to fit: nothing is changed
        return IDENTITY_MAP.copy()
    basis = _smooth_basis(height, width)[keep.reshape(-1)]
    coefficients = np.zeros((3, 7))
    # A slight pull towards the identity keeps a flat or clipped channel well posed.
    pull = 1e-3 * len(basis) * np.diag([1.0] + [1e-4] + [0.0] * 5) + 1e-6 * np.eye(7)
    for c in range(3):
        design = np.concatenate([reference[..., c][keep][:, None], basis], axis=1)
        target = frame[..., c][keep]
        weights = np.ones(len(target))
        for _ in range(iterations):
            weighted = design * weights[:, None]
            coefficients[c] = np.linalg.solve(weighted.T @ design + pull, weighted.T @ target + pull @ IDENTITY_MAP[c])
            residual = np.abs(design @ coefficients[c] - target)
            scale = 1.4826 * np.median(residual) + 1e-6
            weights = np.minimum(1.0, 1.5 * scale / np.maximum(residual, 1e-9))
    return coefficients


def apply_colour_map(frame: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """``g I + b(x, y)`` per channel (:func:`colour_transform`'s map) on a frame of any size,
    float32 (H, W, 3)."""
    image = np.asarray(frame, np.float32)
    height, width = image.shape[:2]
    # The basis of _smooth_basis, evaluated by broadcasting: no (H * W, 6) array at 1080p.
    x = ((np.arange(width, dtype=np.float64) + 0.5) / width - 0.5)[None, :]
    y = ((np.arange(height, dtype=np.float64) + 0.5) / height - 0.5)[:, None]
    out = np.empty_like(image)
    for c in range(3):
        b = coefficients[c, 1:]
        offset = (b[0] + b[1] * x + b[2] * y + b[3] * x * y + b[4] * x * x + b[5] * y * y).astype(np.float32)
        out[..., c] = image[..., c] * np.float32(coefficients[c, 0]) + offset
    return out


def compose_colour_maps(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """The map ``after(before(I))`` of two (3, 7) maps (the offsets stay quadratic)."""
    gain_after = after[:, :1]
    return np.concatenate([gain_after * before[:, :1], gain_after * before[:, 1:] + after[:, 1:]], axis=1)


def invert_colour_map(coefficients: np.ndarray) -> np.ndarray:
    gain = np.maximum(coefficients[:, :1], 1e-3)
    return np.concatenate([1.0 / gain, -coefficients[:, 1:] / gain], axis=1)


def _unclipped(image: np.ndarray) -> np.ndarray:
    # Clipped pixels say nothing about the map: their true value is anywhere past the limit.
    return (image.max(axis=2) < 251) & (image.min(axis=2) > 4)


def clipped_detail(frame: np.ndarray, radius: int = 2) -> np.ndarray:
    """Where a flickering frame's own fine detail is lost: its clipped pixels (a channel at
    either end of the range), grown by ``radius`` pixels and feathered, float32 (H, W) in 0..1.

    A frame pushed past white or black has no detail there, and which pixels clip changes with
    the flicker, so that frame's detail would flicker even after its colour is corrected: the
    local refinement takes its neighbours' detail instead (``lost`` of
    :func:`local_refinement`)."""
    clipped = (~_unclipped(np.asarray(frame))).astype(np.float32)
    if radius <= 0:
        return clipped
    grown = cv2.dilate(clipped, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))
    return np.maximum(cv2.GaussianBlur(grown, (0, 0), radius), clipped)


def pair_colour_map(earlier: np.ndarray, later: np.ndarray, earlier_gray: np.ndarray, later_gray: np.ndarray,
                    flow_preset: str) -> np.ndarray:
    """The colour map taking frame ``earlier`` to the next frame ``later`` (small float32
    (h, w, 3) frames, matched through flows of their flicker-invariant grey forms).

    Fitted both ways on the pixels the forward-backward check keeps and neither clips, and
    the two fits averaged: regressing one frame on the other shrinks the gain by the share of
    their difference that is not colour (resampling, noise), the same in both directions, so
    the average cancels it -- chained over a shot, a gain 0.5 % short is 40 % short after 100
    frames.  Both frames are softened first for the same reason.
    """
    forward = compute_flow(earlier_gray, later_gray, flow_preset)
    backward = compute_flow(later_gray, earlier_gray, flow_preset)
    soft_earlier, soft_later = (cv2.GaussianBlur(f, (0, 0), 1.5) for f in (earlier, later))
    later_on_earlier, earlier_on_later = warp(soft_later, forward), warp(soft_earlier, backward)
    ahead = colour_transform(later_on_earlier, soft_earlier, valid=~occlusion_mask(forward, backward)
                             & _unclipped(soft_earlier) & _unclipped(later_on_earlier))
    back = colour_transform(earlier_on_later, soft_later, valid=~occlusion_mask(backward, forward)
                            & _unclipped(soft_later) & _unclipped(earlier_on_later))
    back_inverted = invert_colour_map(back)
    gain = np.sqrt(np.maximum(ahead[:, :1], 1e-3) * back_inverted[:, :1])
    return np.concatenate([gain, 0.5 * (ahead[:, 1:] + back_inverted[:, 1:])], axis=1)


def shot_colour_maps(frames: Sequence[np.ndarray], *, blind: BlindSettings, flow_preset: str) -> np.ndarray:
    """The flawed atlas of a shot, as colour maps: per frame, the map onto the shot's consistent
    reference.

    Neighbouring frames are related by :func:`pair_colour_map`; chained, they give every
    frame's map from the first, ``I_t = M_t(I_0)``.  The reference of frame ``t`` is the
    average of those maps over the shot (or over ``blind.atlas_window`` frames each side, so
    that slow, intended changes -- a fade, a time-lapse's dusk -- stay), applied to ``I_0``:
    what the shot looks like with its flicker averaged out.  Frame ``t``'s map onto it is
    ``mean(M) o M_t^-1``.  The reference is flawed where the chain drifts or a fit fails,
    which the local refinement then evens out; it is never trained.

    Returns
    -------
    float64 (N, 3, 7): maps for :func:`apply_colour_map`, fitted at ``blind.atlas_width``
    pixels wide (the maps are smooth, so they apply at any size).
    """
    _check_clip("shot", frames)
    height, width = np.shape(frames[0])[:2]
    h, w = _reduced_size(height, width, blind.atlas_width)
    sigma = max(2.0, 8.0 * w / width)

    def small(t):
        frame = np.asarray(frames[t])
        frame = frame if (h, w) == (height, width) else cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(flicker_invariant(frame, sigma=sigma, as_uint8=True), cv2.COLOR_RGB2GRAY)
        return frame.astype(np.float32), gray

    chain = [IDENTITY_MAP]
    previous = small(0)
    for t in range(1, len(frames)):
        current = small(t)
        chain.append(compose_colour_maps(pair_colour_map(previous[0], current[0], previous[1], current[1],
                                                         flow_preset), chain[-1]))
        previous = current
    chain = np.asarray(chain)
    span = len(frames) if blind.atlas_window is None else blind.atlas_window
    sums = np.concatenate([np.zeros((1, 3, 7)), np.cumsum(chain, axis=0)])
    maps = np.empty_like(chain)
    for t in range(len(frames)):
        lo, hi = max(0, t - span), min(len(frames), t + span + 1)
        maps[t] = compose_colour_maps((sums[hi] - sums[lo]) / (hi - lo), invert_colour_map(chain[t]))
    return maps


def local_refinement(filtered: Sequence[np.ndarray], guide: Sequence[np.ndarray], *, window: int, sigma: float,
                     settings: RemapSettings, targets: Sequence[int] | None = None, first_index: int = 0,
                     threads: int | None = None,
                     lost: Sequence[np.ndarray] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Remove local flicker: the exact-form patch blend of ``window`` frames each side, of
    which only the scales above ``sigma`` pixels are taken (0: all of it), so each frame keeps
    its finest detail -- except where ``lost[t]`` (float (H, W) in 0..1, e.g.
    :func:`clipped_detail`) says the frame has none of its own: there, that share of the whole
    blend is taken.  Yields ``(target, frame)`` in increasing target order."""
    for t, blended in iter_patch_blend(filtered, guide, window=window, form="exact", settings=settings,
                                       targets=targets, first_index=first_index, threads=threads):
        if sigma <= 0:
            yield t, blended
            continue
        own = np.asarray(filtered[t], np.float32)
        blended = blended.astype(np.float32)
        refined = own + cv2.GaussianBlur(blended - own, (0, 0), sigma)
        if lost is not None:
            share = np.asarray(lost[t], np.float32)[..., None]
            refined += share * (blended - refined)
        yield t, np.clip(np.rint(refined), 0, 255).astype(np.uint8)


def deflicker_blind(frames: Sequence[np.ndarray], maps: np.ndarray, *, blind: BlindSettings,
                    settings: RemapSettings, targets: Sequence[int] | None = None, first_index: int = 0,
                    threads: int | None = None) -> list[np.ndarray]:
    """Blind deflickering of (part of) a shot given its colour maps (:func:`shot_colour_maps`).

    ``frames[i]`` and ``maps[i]`` are the same frame; ``targets`` (default: all) are
    returned, the others serve as context of the local refinement.

    Returns
    -------
    list of ndarray, uint8 (H, W, 3), one per target, in target order;
    :func:`iter_deflicker_blind` gives them one at a time.
    """
    done = dict(iter_deflicker_blind(frames, maps, blind=blind, settings=settings, targets=targets,
                                     first_index=first_index, threads=threads))
    return [done[int(t)] for t in (range(len(frames)) if targets is None else targets)]


def _filtered(frame: np.ndarray, colour_map: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(apply_colour_map(frame, colour_map)), 0, 255).astype(np.uint8)


def iter_deflicker_blind(frames: Sequence[np.ndarray], maps: np.ndarray, *, blind: BlindSettings,
                         settings: RemapSettings, targets: Sequence[int] | None = None, first_index: int = 0,
                         threads: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`deflicker_blind` as ``(target, frame)`` pairs in increasing target order.  The
    filtered frames (each mapped onto the shot's reference) and their flicker-invariant guides
    are made as the refinement's window reaches them, so a job holds a window of them, not
    its chunk."""
    _check_clip("flickering video", frames)
    if len(maps) != len(frames):
        raise ValueError(f"there are {len(maps)} colour maps for {len(frames)} video frames")
    n = len(frames)
    wanted = sorted(set(range(n) if targets is None else (int(t) for t in targets)))
    if blind.refine_window < 1:
        for t in wanted:
            yield t, _filtered(frames[t], maps[t])
        return
    cache = 2 * blind.refine_window + 3
    # Each input frame is read once, for its filtered form and where it clipped.
    prepared = LazyMap(lambda i: (_filtered(frames[i], maps[i]), clipped_detail(frames[i])), n, cache)
    filtered = LazyMap(lambda i: prepared[i][0], n, 1)
    lost = LazyMap(lambda i: prepared[i][1], n, 1)
    guide = LazyMap(lambda i: flicker_invariant(filtered[i]), n, cache)
    yield from local_refinement(filtered, guide, window=blind.refine_window, sigma=blind.refine_sigma,
                                settings=_blind_matching(settings, blind), targets=wanted, first_index=first_index,
                                threads=threads, lost=lost)
