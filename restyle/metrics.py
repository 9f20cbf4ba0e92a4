"""Evaluation metrics: temporal warping error, fidelity (PSNR), sharpness, synthetic flicker.

* **E_warp** (Lai et al., ECCV 2018, "Learning blind video temporal consistency"): optical
  flow is computed on the *original input* video, never on the output being scored, so every
  method is measured through the same correspondences.  For ``t = 1 .. T-1``, with
  ``F = flow(I_{t-1} -> I_t)`` and ``B = flow(I_t -> I_{t-1})``, a pixel ``x`` of frame
  ``t-1`` is *valid* unless

  - the forward-backward check fails,
    ``|F + B(x+F)|^2 > 0.01 (|F|^2 + |B(x+F)|^2) + 0.5`` (:func:`restyle.flow.occlusion_mask`), or
  - it lies on a motion boundary of ``F``,
    ``|dF/dx|^2 + |dF/dy|^2 > 0.01 |F|^2 + 0.002`` (:func:`restyle.flow.motion_boundary_mask`),

  and ``err_t = mean over valid pixels and RGB channels of (O_t(x + F(x)) - O_{t-1}(x))^2``
  with values scaled to ``[0, 1]`` and bilinear warping (:func:`restyle.flow.warp`).
  ``E_warp = mean_t err_t``: :func:`warping_error` scores a video; :func:`warping_errors`
  gives ``err_t`` of several videos through the same flows, which may be flows computed
  before (:func:`restyle.flow.consecutive_flows` computes them).

  E_warp alone rewards blur and frozen video; report it together with :func:`psnr` against
  the per-frame processed frames, :func:`sharpness_ratio`, and the input's own E_warp.

* **Synthetic flicker** (Lei et al., CVPR 2023, "Blind video deflickering by neural filtering
  with a flawed atlas", section 4): ``I_t = G_t + F_t`` where the flicker ``F_t`` is shared
  by windows of ``W`` consecutive frames (the paper uses ``W = 1, 3, 10``).

All functions that take videos accept any iterable of frames (lists, arrays, generators) and
consume it lazily, so long videos never have to be held in memory.

References
----------
.. [1] W.-S. Lai, J.-B. Huang, O. Wang, E. Shechtman, E. Yumer, M.-H. Yang, "Learning Blind
       Video Temporal Consistency", ECCV 2018. arXiv:1808.00449
.. [2] C. Lei, X. Ren, Z. Zhang, Q. Chen, "Blind Video Deflickering by Neural Filtering with a
       Flawed Atlas", CVPR 2023. arXiv:2303.08120
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from restyle.flow import consecutive_flows, motion_boundary_mask, occlusion_mask, warp

#: Rec.601 luma weights for R, G, B (the ones of ``cv2.COLOR_RGB2GRAY``).
REC601_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])

_END = object()  # marks an exhausted iterator


def _as_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 image -> float32 with values in [0, 1]."""
    return np.asarray(image, dtype=np.float32) / np.float32(255.0)


def valid_pixel_mask(flow_forward: np.ndarray, flow_backward: np.ndarray) -> np.ndarray:
    """Pixels of frame ``t-1`` whose flow is trusted by the E_warp protocol.

    Parameters
    ----------
    flow_forward : ndarray, float32 (H, W, 2)
        ``F``, the flow from frame ``t-1`` to frame ``t``.
    flow_backward : ndarray, float32 (H, W, 2)
        ``B``, the flow from frame ``t`` to frame ``t-1``.

    Returns
    -------
    valid : ndarray, bool (H, W)
        False where the forward-backward check fails (:func:`restyle.flow.occlusion_mask`;
        pixels whose target leaves the frame stay valid, as in the protocol) or where the
        pixel lies on a motion boundary of ``F`` (:func:`restyle.flow.motion_boundary_mask`).
    """
    occluded = occlusion_mask(flow_forward, flow_backward, reject_outside=False)
    return ~(occluded | motion_boundary_mask(flow_forward))


def _check_pair(output_previous, output_current, flow_forward, flow_backward) -> None:
    if output_previous.shape != output_current.shape:
        raise ValueError(f"output frames differ in shape: {output_previous.shape} vs {output_current.shape}")
    if flow_forward.shape[:2] != output_previous.shape[:2] or flow_backward.shape != flow_forward.shape:
        raise ValueError(
            f"flows {flow_forward.shape}, {flow_backward.shape} do not match frames {output_previous.shape}"
        )


def _masked_warping_error(output_previous, output_current, flow_forward, valid) -> float:
    """``err_t`` over the ``valid`` pixels (0.0 when there are none)."""
    if not valid.any():
        return 0.0
    current_in_previous = warp(_as_unit_float(output_current), flow_forward)
    squared_difference = (current_in_previous - _as_unit_float(output_previous)) ** 2
    return float(squared_difference[valid].astype(np.float64).mean())


def warping_error_pair(
    output_previous: np.ndarray,
    output_current: np.ndarray,
    flow_forward: np.ndarray,
    flow_backward: np.ndarray,
) -> float:
    """E_warp term of one pair of consecutive output frames.

    Parameters
    ----------
    output_previous, output_current : ndarray, uint8 (H, W, 3)
        ``O_{t-1}`` and ``O_t``.
    flow_forward, flow_backward : ndarray, float32 (H, W, 2)
        ``F = flow(I_{t-1} -> I_t)`` and ``B = flow(I_t -> I_{t-1})`` on the *input* video.

    Returns
    -------
    err_t : float
        Mean over valid pixels and RGB channels of ``(O_t(x + F(x)) - O_{t-1}(x))^2``, values in
        ``[0, 1]``, bilinear warping.  When no pixel is valid the error is 0.0 (the pair carries
        no trustworthy correspondence; Lai et al.'s evaluation code behaves the same way).
    """
    _check_pair(output_previous, output_current, flow_forward, flow_backward)
    return _masked_warping_error(output_previous, output_current, flow_forward,
                                 valid_pixel_mask(flow_forward, flow_backward))


def warping_errors(
    frames: Iterable[Mapping[str, np.ndarray]],
    flows: Iterable[tuple[np.ndarray, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Per-pair warping errors ``err_t``, ``t = 1 .. T-1``, of videos that share the flows.

    Parameters
    ----------
    frames : iterable of mappings name -> ndarray, uint8 (H, W, 3) RGB
        Frame ``t`` of every video scored, for ``t = 0 .. T-1``: e.g. ``{"output": O_t,
        "input": I_t}``.  Every mapping has the names of the first.
    flows : iterable of (F, B)
        For ``t = 1 .. T-1``: ``F = flow(I_{t-1} -> I_t)`` and ``B = flow(I_t -> I_{t-1})``,
        float32 (H, W, 2), on the *input* video (:func:`restyle.flow.consecutive_flows`, or flows made before).

    Returns
    -------
    errors : dict name -> ndarray, float64 (T-1,)
        ``errors[name][t-1] = err_t`` of that video (see :func:`warping_error_pair`); empty
        (no names) when there are no frames.

    Raises
    ------
    ValueError
        When there is not exactly one pair of flows per pair of frames.

    Notes
    -----
    Frames and flows are consumed lazily and in lockstep: at most two frames of each video
    are referenced at any time.  The valid pixels of a pair are found once for all videos.
    """
    frame_iterator, flow_iterator = iter(frames), iter(flows)
    previous = next(frame_iterator, _END)
    names = [] if previous is _END else list(previous)
    errors: dict[str, list[float]] = {name: [] for name in names}
    pairs = 0
    for current in frame_iterator:
        pairs += 1
        flow_pair = next(flow_iterator, _END)
        if flow_pair is _END:
            raise ValueError(f"the frames and the flows differ in length: only {pairs - 1} pairs of flows")
        forward, backward = flow_pair
        valid = None
        for name in names:
            _check_pair(previous[name], current[name], forward, backward)
            if valid is None:
                valid = valid_pixel_mask(forward, backward)
            errors[name].append(_masked_warping_error(previous[name], current[name], forward, valid))
        previous = current
        del current  # keep only the two previous frames alive while reading
    if next(flow_iterator, _END) is not _END:
        raise ValueError(f"the frames and the flows differ in length: more pairs of flows than the "
                         f"{pairs} pairs of frames")
    return {name: np.asarray(values, dtype=np.float64) for name, values in errors.items()}


def warping_error(
    output_frames: Iterable[np.ndarray],
    input_frames: Iterable[np.ndarray],
    flow_preset: str = "medium",
) -> float:
    """E_warp of an output video: the mean of its ``err_t`` (:func:`warping_errors`).

    Parameters
    ----------
    output_frames : iterable of ndarray, uint8 (H, W, 3) RGB
        The video being scored, ``O_0 .. O_{T-1}``.
    input_frames : iterable of ndarray, uint8 (H, W, 3) RGB
        The original input video ``I_0 .. I_{T-1}`` the flow is computed on
        (:func:`restyle.flow.consecutive_flows`); as many frames as ``output_frames``.
    flow_preset : str
        DIS preset for :func:`restyle.flow.compute_flow`.

    Returns
    -------
    e_warp : float
        Mean squared warping error in ``[0, 1]`` intensity units.  A video with fewer than two
        frames has no consecutive pair and scores 0.0.

    Raises
    ------
    ValueError
        When the two videos differ in length.

    Notes
    -----
    Both videos are consumed lazily and in lockstep: at most two input and two output frames
    are referenced at any time.
    """
    counts = {"output": 0, "input": 0}

    def counted(frames, name):
        for frame in frames:
            counts[name] += 1
            yield frame

    errors = warping_errors(({"output": frame} for frame in counted(output_frames, "output")),
                            consecutive_flows(counted(input_frames, "input"), flow_preset)).get("output", np.zeros(0))
    if counts["output"] != counts["input"]:
        raise ValueError(f"output and input videos differ in length ({counts['output']} and {counts['input']} frames)")
    return float(errors.mean()) if errors.size else 0.0


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB.

    ``PSNR = 10 log10(255^2 / MSE)`` with the MSE over all pixels and channels.

    Parameters
    ----------
    image, reference : ndarray, uint8, same shape

    Returns
    -------
    psnr : float
        ``inf`` when the images are identical.
    """
    if image.shape != reference.shape:
        raise ValueError(f"images differ in shape: {image.shape} vs {reference.shape}")
    mean_squared_error = np.mean((np.asarray(image, np.float64) - np.asarray(reference, np.float64)) ** 2)
    if mean_squared_error == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0 ** 2 / mean_squared_error))


def luma(image: np.ndarray) -> np.ndarray:
    """Rec.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B`` as float64 in [0, 255].

    A 2-D image is taken to be luma already.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        return image.astype(np.float64)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB or (H, W) image, got shape {image.shape}")
    return image.astype(np.float64) @ REC601_LUMA_WEIGHTS


def sharpness(image: np.ndarray) -> float:
    """Mean luma gradient magnitude of an image.

    The gradient is taken on Rec.601 luma (:func:`luma`, 0..255 scale) with central
    differences, ``gx = (Y[y, x+1] - Y[y, x-1]) / 2`` and ``gy = (Y[y+1, x] - Y[y-1, x]) / 2``,
    over interior pixels only (no border padding), and the result is the mean of
    ``sqrt(gx^2 + gy^2)``, in luma levels per pixel.

    Parameters
    ----------
    image : ndarray, uint8 (H, W, 3) RGB, or (H, W) luma; H, W >= 3

    Returns
    -------
    sharpness : float
        0.0 for a flat image; larger is sharper.
    """
    y = luma(image)
    if y.shape[0] < 3 or y.shape[1] < 3:
        raise ValueError(f"sharpness needs an image of at least 3x3 pixels, got {y.shape}")
    gradient_x = (y[1:-1, 2:] - y[1:-1, :-2]) / 2.0
    gradient_y = (y[2:, 1:-1] - y[:-2, 1:-1]) / 2.0
    return float(np.mean(np.hypot(gradient_x, gradient_y)))


def sharpness_ratio(sharpnesses: Iterable[float], references: Iterable[float]) -> float:
    """Sharpness of a video relative to reference frames (e.g. the per-frame processed ones).

    ``ratio = mean_i sharpnesses[i] / mean_i references[i]``, a ratio of means so that nearly
    flat frames cannot dominate.  Below 1 means blurrier than the references.

    Parameters
    ----------
    sharpnesses, references : iterables of float, same length
        :func:`sharpness` of each image and of its reference: ``map(sharpness, images)``, or
        values measured piece by piece (a workflow job per gap).

    Returns
    -------
    ratio : float
        1.0 when both are perfectly flat, ``inf`` when only the references are.
    """
    sharpnesses, references = list(sharpnesses), list(references)
    if len(sharpnesses) != len(references):
        raise ValueError(f"{len(sharpnesses)} sharpness values but {len(references)} references")
    if not sharpnesses:
        raise ValueError("no images given")
    image_mean, reference_mean = np.mean(sharpnesses), np.mean(references)
    if reference_mean == 0.0:
        return 1.0 if image_mean == 0.0 else float("inf")
    return float(image_mean / reference_mean)


def flicker_field(shape: tuple[int, int], window_index: int, strength: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The flicker of one window of the synthetic protocol, as a per-pixel affine colour map.

    A flickered frame is ``clip(gain * G + offset)``; the window's parameters are drawn from a
    generator seeded by ``(seed, window_index)``, so any window can be regenerated on its own.

    With ``s = strength``, per window:

    * exposure: one global gain ``2 ** (s * u)``, ``u ~ U(-0.5, 0.5)`` (up to +-0.5 stop at s = 1);
    * white balance: a per-channel gain ``1 + s * c``, ``c ~ U(-0.1, 0.1)`` each;
    * black level: a per-channel offset ``s * 255 * o``, ``o ~ U(-0.05, 0.05)`` each;
    * local (low-frequency) shading: an additive per-channel linear ramp across the frame,
      ``s * 255 * 0.05 * (a (x/W - 1/2) + b (y/H - 1/2))``, ``a, b ~ U(-1, 1)``, so the flicker
      is not only global (old films and time-lapses flicker unevenly).

    ``strength = 0`` is no flicker at all.

    Parameters
    ----------
    shape : (H, W)
    window_index : int
        ``t // window`` for frame ``t``.
    strength : float, >= 0
    seed : int

    Returns
    -------
    gain : ndarray, float64 (1, 1, 3)
    offset : ndarray, float64 (H, W, 3), in 0..255 intensity units
    """
    height, width = shape
    rng = np.random.default_rng([int(seed), int(window_index)])
    exposure = 2.0 ** (strength * rng.uniform(-0.5, 0.5))
    white_balance = 1.0 + strength * rng.uniform(-0.1, 0.1, size=3)
    black_level = strength * 255.0 * rng.uniform(-0.05, 0.05, size=3)
    ramp_x, ramp_y = rng.uniform(-1.0, 1.0, size=(2, 3))
    x = (np.arange(width) + 0.5) / width - 0.5
    y = (np.arange(height) + 0.5) / height - 0.5
    shading = strength * 255.0 * 0.05 * (ramp_x * x[None, :, None] + ramp_y * y[:, None, None])
    gain = (exposure * white_balance).reshape(1, 1, 3)
    return gain, black_level.reshape(1, 1, 3) + shading


def synthetic_flicker(
    frames: Iterable[np.ndarray], window: int, strength: float = 1.0, seed: int = 0
) -> Iterator[np.ndarray]:
    """Add synthetic flicker to a clean video, as in the blind-deflickering benchmark.

    ``I_t = G_t + F_t`` with ``F_t = (gain_k - 1) G_t + offset_k`` (then rounded and clipped to
    uint8), where ``k = t // window``: every window of ``window`` consecutive frames shares the
    same flicker, so ``window = 1`` is short-term (per-frame) flicker and large windows are
    long-term flicker.  See :func:`flicker_field` for what the flicker is made of.  The paper
    scores deflickering of ``W = 1, 3, 10`` by PSNR against ``G`` and by E_warp.

    Parameters
    ----------
    frames : iterable of ndarray, uint8 (H, W, 3) RGB
        The clean video ``G``; consumed lazily.
    window : int, >= 1
        Number of consecutive frames sharing one flicker.
    strength : float, >= 0
        Scales every flicker component; 0 returns the frames unchanged.
    seed : int
        Same seed, same flicker (independently of the frame content and of how far the
        iterator is consumed).

    Yields
    ------
    frame : ndarray, uint8 (H, W, 3)
    """
    if int(window) != window or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength!r}")
    window = int(window)
    cached_index, cached_shape, gain, offset = None, None, None, None
    for t, frame in enumerate(frames):
        frame = np.asarray(frame)
        window_index = t // window
        if window_index != cached_index or frame.shape[:2] != cached_shape:
            cached_index, cached_shape = window_index, frame.shape[:2]
            gain, offset = flicker_field(cached_shape, window_index, strength, seed)
        flickered = frame.astype(np.float64) * gain + offset
        yield np.clip(np.rint(flickered), 0, 255).astype(np.uint8)
