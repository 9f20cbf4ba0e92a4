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
2. *A flawed atlas* (:func:`shot_atlas`): one consistent reference of the shot, here the
   table-form patch blend of the shot's frames over a window as long as the shot, at a
   reduced size -- every frame is the average of the whole shot remapped onto it.  It is
   consistent (its colour and brightness are the shot's average) but flawed: soft, ghosted
   where the remaps fail.  No neural network is trained.
3. *The filter* (:func:`atlas_filter`): the frame keeps its own structure and detail and takes
   the atlas's colour and brightness through a smooth per-channel gain and offset fitted to
   the atlas (:func:`colour_transform`, robust least squares), optionally plus what still
   differs above ``filter_sigma``; a map that smooth cannot copy the atlas's flaws.
4. *Local refinement*: a short guided patch blend of the filtered frames (guide: the
   normalised frames) removes what flickers locally; only its scales above ``refine_sigma``
   are taken, so the frame's finest detail survives.

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

from restyle.flow import compute_flow, remap, sampling_grid
from restyle.io import LazyMap
from restyle.propagate import advect_positions

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

    ``position`` is the sub-pixel source position: where the motion followed by the warm start
    says wherever PatchMatch kept that match (``followed``), the patch centre elsewhere;
    ``nnf`` the PatchMatch field (patch centres), whose patches are voted where not followed;
    both None when every pixel follows the motion.  ``weight`` is the blend weight.
    """

    nnf: np.ndarray | None
    position: np.ndarray
    followed: np.ndarray | None
    weight: np.ndarray | None


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

    def _gray_guide(self, t: int) -> np.ndarray:
        if t not in self._gray:
            self._gray[t] = cv2.cvtColor(np.clip(np.asarray(self.guide[t]), 0, 255).astype(np.uint8),
                                         cv2.COLOR_RGB2GRAY)
        return self._gray[t]

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
                grid_x, grid_y = sampling_grid(np.zeros_like(first.position))
                position = advect_positions(second.position, first.position - np.stack([grid_x, grid_y], axis=-1))
            self.fields[key] = self._refine(t, s, position)
        return self.fields[key]

    def _refine(self, t: int, s: int, position: np.ndarray) -> _Field:
        """The field from its warm start ``position``, searched by PatchMatch where the warm
        start explains the guide badly (its weight below 1/2): elsewhere the motion is right,
        and searching there costs the most and changes the least."""
        from restyle.synthesis import patchmatch

        warm = self._weighed(t, s, _Field(None, position, None, None))
        active = warm.weight < 0.5
        if not active.any():
            return warm
        st = self.settings
        height, width = position.shape[:2]
        start = np.empty((height, width, 2), np.int32)
        start[..., 0] = np.clip(np.rint(position[..., 0]), 0, width - 1)
        start[..., 1] = np.clip(np.rint(position[..., 1]), 0, height - 1)
        nnf, _ = patchmatch([self.guide[s], self.processed[s]], [self.guide[t], self.processed[t]],
                            [st.guide_weight, st.style_weight], initial_nnf=start, patch_size=st.patch_size,
                            iterations=st.patchmatch_iters, search_radius=st.search_radius,
                            seed=_pair_seed(st.seed, self.first_index + t, self.first_index + s),
                            active=active, threads=self.threads)
        followed = np.all(nnf == start, axis=-1)
        if followed.all():
            return warm
        position = np.where(followed[..., None], position, nnf.astype(np.float32)).astype(np.float32)
        # Kept compact: the fields of a window are much of what a job at 1080p holds.
        nnf = nnf.astype(np.int16) if max(height, width) < 32768 else nnf
        return self._weighed(t, s, _Field(nnf, position, followed, None))

    def _weighed(self, t: int, s: int, field: _Field) -> _Field:
        """``field`` with its blend weights, from how well the guide remapped by it explains
        the guide of ``t``.  Weighed by the guide alone: the processed frames differ where
        they flicker, which is what the blend must average out, not a sign of a wrong match."""
        matched = self._apply(field, self.guide[s])
        residual = ((matched - np.asarray(self.guide[t], np.float32)) ** 2).mean(axis=2)
        error = cv2.blur(residual, (self.settings.patch_size, self.settings.patch_size))
        weight = np.exp(-error / np.float32(self.settings.error_scale)).astype(np.float16)
        return dataclasses.replace(field, weight=weight)

    def _apply(self, field: _Field, values: np.ndarray) -> np.ndarray:
        """``values`` of frame ``s`` brought onto ``t``: resampled at the sub-pixel positions
        where the field follows the motion, the vote of the matched patches elsewhere."""
        from restyle.synthesis import vote

        values = np.asarray(values, np.float32)
        # OpenCV's cubic remap takes at most 4 channels: an entry with the detail channel has
        # 5, resampled in groups.
        exact = np.concatenate([remap(np.ascontiguousarray(values[..., c:c + 4]), field.position[..., 0],
                                      field.position[..., 1], "cubic").reshape(values.shape[:2] + (-1,))
                                for c in range(0, values.shape[2], 4)], axis=2)
        if field.nnf is None:
            return exact
        voted = vote(values, field.nnf, self.settings.patch_size)
        return np.where(field.followed[..., None], exact, voted)

    def remap(self, values: np.ndarray, t: int, s: int) -> tuple[np.ndarray, np.ndarray]:
        f = self.field(t, s)
        return self._apply(f, values), f.weight.astype(np.float32)

    def forget(self, keep) -> None:
        """Drop the fields ``(t, s)`` for which ``keep(t, s)`` is False."""
        self.fields = {k: v for k, v in self.fields.items() if keep(*k)}
        self._gray.clear()


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
    return np.sqrt(np.maximum(cv2.blur((detail * detail).mean(axis=2), (DETAIL_BOX, DETAIL_BOX)), 0.0))


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
        yield t, numerator, denominator
        # Only the fields between neighbours are reused, by the next targets.
        remapper.forget(lambda a, b, t=t: abs(a - b) == 1 and abs(a - t) <= window + 1)


def _stored(sums: np.ndarray) -> np.ndarray:
    """A table entry (weighted sums, then the sum of weights, float32) as float16 means and
    weight: half the memory."""
    weight = sums[..., -1:]
    return np.concatenate([sums[..., :-1] / np.maximum(weight, np.float32(1e-6)), weight], axis=2).astype(np.float16)


def _sums(stored: np.ndarray) -> np.ndarray:
    """The weighted sums of a :func:`_stored` entry, float32."""
    entry = stored.astype(np.float32)
    entry[..., :-1] *= entry[..., -1:]
    return entry


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

    # Entries are stored as float16 weighted means and weights (_stored): at 1080p the
    # window's entries are what a job holds most of, and a mean in 0..255 keeps float16's
    # resolution (1/16 of a level or finer) where a sum of up to 2^k frames would not.
    lifetime = _field_lifetimes(levels, query_offset)
    table: dict[tuple[int, int], np.ndarray] = {}
    last_target = min(targets) if direction > 0 else max(targets)
    first = n - 1 if direction > 0 else 0
    for i in range(first, last_target - direction, -direction):
        base = np.asarray(processed[i], np.float32)
        own = np.concatenate([base, np.ones(base.shape[:2] + (1,), np.float32)], axis=2)
        table[(0, i)] = _stored(own)
        for k in range(1, levels):
            s = i + direction * (1 << (k - 1))
            if not 0 <= s < n:  # past the end of the context: a shorter block
                table[(k, i)] = table[(k - 1, i)]
                continue
            remapped, weight = remapper.remap(_sums(table[(k - 1, s)]), i, s)
            table[(k, i)] = _stored(_sums(table[(k - 1, i)]) + remapped * weight[..., None])
        if i in targets:
            total = None
            for k, off in query_offset.items():
                s = i + direction * off
                if not 0 <= s < n:
                    continue
                node = _sums(table[(k, s)])
                if s != i:
                    remapped, weight = remapper.remap(node, i, s)
                    node = remapped * weight[..., None]
                total = node if total is None else total + node
            yield i, total[..., :-1], total[..., -1]
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
        # The later side as float16 means and weights; the earlier side then completes the
        # targets in order and merges them, the frame itself counted once.
        for t, numerator, denominator in run(1):
            np.save(os.path.join(spill, f"{t}.npy"), _stored(np.concatenate([numerator, denominator[..., None]], axis=2)))
        for t, numerator, denominator in run(-1):
            path = os.path.join(spill, f"{t}.npy")
            later = _sums(np.load(path))
            os.remove(path)
            own = np.asarray(values[t], np.float32)
            total = numerator + later[..., :-1] - own
            mean = total / (denominator + later[..., -1] - 1.0)[..., None]
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
        Width the atlas is built at (it only needs the coarse scales).
    atlas_window : int or None
        Frames averaged each side into an atlas frame; None: the whole shot.
    filter_sigma : float
        Scale, as a fraction of the frame width, above which colour and brightness come from
        the atlas.
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
    filter_sigma: float
    refine_window: int
    refine_sigma: float
    error_scale: float


def _blind_matching(settings: RemapSettings, blind: BlindSettings) -> RemapSettings:
    """Matching on flicker-invariant frames: on them alone (the frames themselves flicker),
    with the blind method's error scale (their differences are in units of local contrast)."""
    # No detail restoration: the atlas is meant to be the plain average, and the refinement
    # takes only scales coarser than the detail.
    return dataclasses.replace(settings, style_weight=0.0, guide_weight=max(settings.guide_weight, 1e-6),
                               error_scale=blind.error_scale, detail_gain=1.0)


def shot_atlas(frames: Sequence[np.ndarray], *, blind: BlindSettings, settings: RemapSettings,
               first_index: int = 0, threads: int | None = None) -> np.ndarray:
    """A consistent but flawed reference of one shot: its frames averaged onto each other.

    The table-form :func:`patch_blend` of the shot, matched on its :func:`flicker_invariant`
    frames, at ``blind.atlas_width`` pixels wide, over a window as long as the shot (or
    ``blind.atlas_window`` frames each side): every frame becomes the average of the shot
    remapped onto it, so its colour and brightness no longer flicker.

    Returns
    -------
    float32 (N, h, w, 3) at the reduced size
    """
    _check_clip("shot", frames)
    height, width = np.shape(frames[0])[:2]
    h, w = _reduced_size(height, width, blind.atlas_width)
    small = [np.asarray(f) if (h, w) == (height, width) else cv2.resize(np.asarray(f), (w, h), interpolation=cv2.INTER_AREA)
             for f in frames]
    guide = [flicker_invariant(f, sigma=max(2.0, 8.0 * w / width)) for f in small]
    span = len(frames) - 1 if blind.atlas_window is None else blind.atlas_window
    if span < 1:
        return np.asarray(small, np.float32)
    blended = patch_blend(small, guide, window=span, form="table", settings=_blind_matching(settings, blind),
                          first_index=first_index, threads=threads)
    return np.asarray(blended, np.float32)


def _smooth_basis(height: int, width: int) -> np.ndarray:
    """(1, x, y, x y, x^2, y^2) over the frame, x and y in [-1/2, 1/2]: (H * W, 6)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    x = (x + 0.5) / width - 0.5
    y = (y + 0.5) / height - 0.5
    return np.stack([np.ones_like(x), x, y, x * y, x * x, y * y], axis=-1).reshape(-1, 6)


def colour_transform(frame: np.ndarray, reference: np.ndarray, *, iterations: int = 4) -> np.ndarray:
    """The smooth per-channel colour map between ``frame`` and ``reference``.

    Per channel ``c`` the frame is modelled as the reference seen through a smooth gain and
    offset, ``I_c = alpha_c(x, y) A_c + beta_c(x, y)`` with quadratic polynomials ``alpha``,
    ``beta`` of the position, fitted by iteratively reweighted least squares (Huber weights),
    so pixels where the reference is wrong -- a ghost, a moving object it blurred -- barely
    pull the fit.  The frame is regressed on the reference, not the other way round: the
    reference is the softer of the two, and regressing on the sharper image would read its
    extra detail as noise and shrink the gain.  Exposure, white balance, black level and
    shading are such maps, undone by :func:`apply_colour_transform`; the map is too smooth to
    copy the reference's own structure.

    Parameters
    ----------
    frame, reference : (h, w, 3) float, the same size (small: the fit needs few pixels)

    Returns
    -------
    float64 (3, 12): per channel the coefficients of ``alpha`` (first 6) and ``beta`` (last 6)
    on :func:`_smooth_basis`.
    """
    frame = np.asarray(frame, np.float64)
    reference = np.asarray(reference, np.float64)
    height, width = frame.shape[:2]
    basis = _smooth_basis(height, width)
    coefficients = np.zeros((3, 12))
    identity = np.zeros(12)
    identity[0] = 1.0  # alpha = 1, beta = 0
    # A slight pull towards the identity keeps a flat or clipped channel well posed.
    pull = 1e-3 * len(basis) * np.diag([1.0] + [0.0] * 5 + [1e-4] + [0.0] * 5)
    for c in range(3):
        design = np.concatenate([basis * reference[..., c].reshape(-1, 1), basis], axis=1)
        target = frame[..., c].reshape(-1)
        weights = np.ones(len(target))
        for _ in range(iterations):
            weighted = design * weights[:, None]
            coefficients[c] = np.linalg.solve(weighted.T @ design + pull, weighted.T @ target + pull @ identity)
            residual = np.abs(design @ coefficients[c] - target)
            scale = 1.4826 * np.median(residual) + 1e-6
            weights = np.minimum(1.0, 1.5 * scale / np.maximum(residual, 1e-9))
    return coefficients


def apply_colour_transform(frame: np.ndarray, coefficients: np.ndarray, min_gain: float = 0.2) -> np.ndarray:
    """Undo :func:`colour_transform`'s map on ``frame`` (uint8 (H, W, 3), any size):
    ``(I - beta) / alpha``, float32."""
    image = np.asarray(frame, np.float32)
    height, width = image.shape[:2]
    # The basis of _smooth_basis, evaluated by broadcasting: no (H * W, 6) array at 1080p.
    x = ((np.arange(width, dtype=np.float64) + 0.5) / width - 0.5)[None, :]
    y = ((np.arange(height, dtype=np.float64) + 0.5) / height - 0.5)[:, None]

    def polynomial(c):
        return (c[0] + c[1] * x + c[2] * y + c[3] * x * y + c[4] * x * x + c[5] * y * y).astype(np.float32)

    out = np.empty_like(image)
    for c in range(3):
        gain = np.maximum(polynomial(coefficients[c, :6]), np.float32(min_gain))
        out[..., c] = (image[..., c] - polynomial(coefficients[c, 6:])) / gain
    return out


def atlas_filter(frame: np.ndarray, atlas_frame: np.ndarray, sigma: float) -> np.ndarray:
    """The frame with the atlas frame's colour and brightness and its own detail.

    First the smooth colour map of the frame onto the atlas (:func:`colour_transform`, fitted
    at the atlas's size with both blurred alike, so the atlas's softness does not read as
    lost contrast).  Then, when ``sigma > 0``, what still differs at scales above ``sigma``
    pixels is taken from the atlas too: uneven flicker a quadratic map cannot follow.  Finer
    scales -- detail, and the atlas's own flaws -- stay the frame's.

    Parameters
    ----------
    frame : uint8 (H, W, 3)
    atlas_frame : (h, w, 3), any size (e.g. :func:`shot_atlas`'s)
    sigma : float
        Pixels of ``frame``; 0: the colour map only.

    Returns
    -------
    uint8 (H, W, 3)
    """
    image = np.asarray(frame)
    height, width = image.shape[:2]
    atlas = np.asarray(atlas_frame, np.float32)
    h, w = atlas.shape[:2]
    small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    soften = max(1.0, 2.0 * w / 192)
    mapped = apply_colour_transform(image, colour_transform(cv2.GaussianBlur(small, (0, 0), soften),
                                                            cv2.GaussianBlur(atlas, (0, 0), soften)))
    if sigma > 0:
        scale = w / width
        small_sigma = max(sigma * scale, 0.5)
        mapped_small = cv2.resize(mapped, (w, h), interpolation=cv2.INTER_AREA)
        residual = cv2.GaussianBlur(atlas - mapped_small, (0, 0), small_sigma)
        mapped += cv2.resize(residual, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(np.rint(mapped), 0, 255).astype(np.uint8)


def local_refinement(filtered: Sequence[np.ndarray], guide: Sequence[np.ndarray], *, window: int, sigma: float,
                     settings: RemapSettings, targets: Sequence[int] | None = None, first_index: int = 0,
                     threads: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Remove local flicker: the exact-form patch blend of ``window`` frames each side, of
    which only the scales above ``sigma`` pixels are taken (0: all of it), so each frame keeps
    its finest detail.  Yields ``(target, frame)`` in increasing target order."""
    for t, blended in iter_patch_blend(filtered, guide, window=window, form="exact", settings=settings,
                                       targets=targets, first_index=first_index, threads=threads):
        if sigma <= 0:
            yield t, blended
            continue
        own = np.asarray(filtered[t], np.float32)
        correction = cv2.GaussianBlur(blended.astype(np.float32) - own, (0, 0), sigma)
        yield t, np.clip(np.rint(own + correction), 0, 255).astype(np.uint8)


def deflicker_blind(frames: Sequence[np.ndarray], atlas: np.ndarray, *, blind: BlindSettings,
                    settings: RemapSettings, targets: Sequence[int] | None = None, first_index: int = 0,
                    threads: int | None = None) -> list[np.ndarray]:
    """Blind deflickering of (part of) a shot given its atlas (:func:`shot_atlas`).

    ``frames[i]`` and ``atlas[i]`` are the same frame; ``targets`` (default: all) are
    returned, the others serve as context of the local refinement.

    Returns
    -------
    list of ndarray, uint8 (H, W, 3), one per target, in target order;
    :func:`iter_deflicker_blind` gives them one at a time.
    """
    done = dict(iter_deflicker_blind(frames, atlas, blind=blind, settings=settings, targets=targets,
                                     first_index=first_index, threads=threads))
    return [done[int(t)] for t in (range(len(frames)) if targets is None else targets)]


def iter_deflicker_blind(frames: Sequence[np.ndarray], atlas: np.ndarray, *, blind: BlindSettings,
                         settings: RemapSettings, targets: Sequence[int] | None = None, first_index: int = 0,
                         threads: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`deflicker_blind` as ``(target, frame)`` pairs in increasing target order.  The
    filtered frames and their flicker-invariant guides are made as the refinement's window
    reaches them, so a job holds a window of them, not its chunk."""
    _check_clip("flickering video", frames)
    if len(atlas) != len(frames):
        raise ValueError(f"the atlas has {len(atlas)} frames for {len(frames)} video frames")
    n = len(frames)
    wanted = sorted(set(range(n) if targets is None else (int(t) for t in targets)))
    width = np.shape(frames[0])[1]
    sigma = blind.filter_sigma * width
    if blind.refine_window < 1:
        for t in wanted:
            yield t, atlas_filter(frames[t], atlas[t], sigma)
        return
    cache = 2 * blind.refine_window + 3
    filtered = LazyMap(lambda i: atlas_filter(frames[i], atlas[i], sigma), n, cache)
    guide = LazyMap(lambda i: flicker_invariant(filtered[i]), n, cache)
    yield from local_refinement(filtered, guide, window=blind.refine_window, sigma=blind.refine_sigma,
                                settings=_blind_matching(settings, blind), targets=wanted, first_index=first_index,
                                threads=threads)
