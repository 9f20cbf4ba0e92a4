"""A feed-forward stylizer trained per scene on its keyframes, with temporal losses.

A small image-to-image network (convolutions, optionally instance normalisation, residual
blocks at a quarter of the resolution, skip connections, predicting the change to the frame's
colour) is trained from scratch on random patches of
(input keyframe -> styled keyframe), the few-shot patch-based training of Texler et al.
(2020), then run on every frame of the scene.  Every frame is rendered on its own, so
content that appears mid-gap is painted as the keyframes paint such content rather than
stretched from its neighbours, and a scene's frames render in parallel.

Nothing is downloaded: no ImageNet network.  The losses are

``L = lambda_rec L1(N(x_k), y_k) + lambda_style SWD + lambda_temp L_temp``

* reconstruction: L1 between the network's output on keyframe patches and the styled
  keyframe;
* style: a sliced Wasserstein distance (Heitz et al. 2021) between the distributions of
  local 3x3 neighbourhoods, at 1, 1/2 and 1/4 scale, of the output on the scene's other
  frames and of the styled keyframes: the texture statistics of the style, without a
  pretrained feature network;
* temporal, on pairs of consecutive frames of the scene: ``flow`` (Ruder et al. 2016), the
  output of frame t+1 against that of frame t warped by the input's optical flow, pixels the
  forward-backward check marks occluded left out; or ``difference`` (Xu et al. 2021), the
  output's frame difference against the input's, which needs no flow.

Both temporal losses compare the network's outputs on crops of the two frames taken at the
same place and of the same size, so their instance statistics cover the same content.

References
----------
Texler, O. et al., "Interactive Video Stylization Using Few-Shot Patch-Based Training",
ACM Trans. Graph. 39(4), 2020, doi:10.1145/3386569.3392453.
Johnson, J., Alahi, A., Fei-Fei, L., "Perceptual Losses for Real-Time Style Transfer and
Super-Resolution", ECCV 2016, arXiv:1603.08155.
Ulyanov, D., Vedaldi, A., Lempitsky, V., "Instance Normalization: The Missing Ingredient for
Fast Stylization", arXiv:1607.08022.
Ruder, M., Dosovitskiy, A., Brox, T., "Artistic Style Transfer for Videos", GCPR 2016,
arXiv:1604.08610.
Xu, J., Xiong, Z., Hu, X., "Frame Difference-Based Temporal Loss for Video Stylization",
arXiv:2102.05822.
Heitz, E., Vanhoey, K., Chambon, T., Belcour, L., "A Sliced Wasserstein Loss for Neural
Texture Synthesis", CVPR 2021, arXiv:2006.07229.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import io
from .flow import compute_flow, occlusion_mask, warp
from .torch_runtime import torch_settings

GUIDES = ("edge",)
TEMPORAL_LOSSES = ("none", "flow", "difference")
NORMALISATIONS = ("none", "instance")
# Pixels a crop of frame t reaches beyond the crop of frame t+1 it is warped onto.
FLOW_MARGIN = 8
FORMAT = "restyle-network-1"


@dataclass(frozen=True)
class NetworkSettings:
    """The ``network`` section of the config (its schema holds the defaults:
    ``NetworkSettings(**restyle.preflight.network_settings(config))``).

    Attributes
    ----------
    widths : tuple of 3 ints
        Channels at full, half and quarter resolution.
    residual_blocks : int
        Residual blocks at quarter resolution.
    normalisation : {"none", "instance"}
        After each convolution.  Instance normalisation (Ulyanov et al.), Johnson's choice for
        networks trained on whole images, is worse here (BENCHMARKS.md): trained on small
        patches, its statistics there are not those of a whole frame at inference.
    guides : tuple of str
        Input channels besides the frame's colour: ``edge`` (the luma's gradient magnitude).
    patch_size : int
        Side of the training patches (a multiple of 4).
    batch_size : int
        Keyframe patches per step (and as many for the style term).
    temporal_batch : int
        Crops of pairs of consecutive frames per step for the temporal term.
    iterations : int
        Adam steps.
    learning_rate : float
    reconstruction_weight, style_weight, temporal_weight : float
        ``lambda`` of each loss; 0 turns a term off.
    temporal_loss : {"none", "flow", "difference"}
    temporal_pairs : int
        Pairs of consecutive frames of the scene the temporal terms sample from (spread
        evenly over the scene; their flows are computed when training starts); the style
        term samples the first frames of the same pairs.
    flow_preset : str
        DIS preset of those flows.
    seed : int
    """

    widths: tuple[int, int, int]
    residual_blocks: int
    normalisation: str
    guides: tuple[str, ...]
    patch_size: int
    batch_size: int
    temporal_batch: int
    iterations: int
    learning_rate: float
    reconstruction_weight: float
    style_weight: float
    temporal_loss: str
    temporal_weight: float
    temporal_pairs: int
    flow_preset: str
    seed: int

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "guides", tuple(self.guides))
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ValueError(f"network widths must be 3 positive channel counts, got {list(self.widths)}")
        if unknown := set(self.guides) - set(GUIDES):
            raise ValueError(f"unknown network guide(s) {sorted(unknown)}; use any of {list(GUIDES)}")
        if self.patch_size < 8 or self.patch_size % 4:
            raise ValueError(f"network patch_size must be a multiple of 4 and >= 8, got {self.patch_size}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {self.normalisation!r}; use one of {list(NORMALISATIONS)}")
        if self.temporal_loss not in TEMPORAL_LOSSES:
            raise ValueError(f"unknown temporal_loss {self.temporal_loss!r}; use one of {list(TEMPORAL_LOSSES)}")
        for name in ("batch_size", "temporal_batch", "iterations", "temporal_pairs", "residual_blocks"):
            if getattr(self, name) < (0 if name == "residual_blocks" else 1):
                raise ValueError(f"network {name} must be >= 1, got {getattr(self, name)}")

    @property
    def in_channels(self) -> int:
        return 3 + len(self.guides)

    @property
    def uses_temporal(self) -> bool:
        return self.temporal_loss != "none" and self.temporal_weight > 0


# --------------------------------------------------------------------------------- network


def _norm(channels: int, normalisation: str) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True) if normalisation == "instance" else nn.Identity()


def _conv(c_in: int, c_out: int, normalisation: str, stride: int = 1) -> nn.Sequential:
    """3x3 convolution (reflected borders), normalisation, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, padding_mode="reflect"),
                         _norm(c_out, normalisation), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    def __init__(self, channels: int, normalisation: str):
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels, normalisation),
                                  nn.Conv2d(channels, channels, 3, 1, 1, padding_mode="reflect"),
                                  _norm(channels, normalisation))

    def forward(self, x):
        return x + self.body(x)


class Generator(nn.Module):
    """Encoder (full, 1/2, 1/4 resolution), residual blocks, decoder with skip connections,
    predicting the change to the frame's colour.  The input itself reaches the last
    convolution: instance normalisation removes a patch's mean colour, which the output
    needs."""

    def __init__(self, in_channels: int, widths: Sequence[int], residual_blocks: int, normalisation: str):
        super().__init__()
        c0, c1, c2 = widths
        n = normalisation
        self.enc0, self.enc1, self.enc2 = _conv(in_channels, c0, n), _conv(c0, c1, n, 2), _conv(c1, c2, n, 2)
        self.blocks = nn.Sequential(*[_Residual(c2, n) for _ in range(residual_blocks)])
        self.dec1, self.dec0 = _conv(c2 + c1, c1, n), _conv(c1 + c0, c0, n)
        self.out = nn.Conv2d(c0 + in_channels, 3, 3, 1, 1, padding_mode="reflect")

    def forward(self, x):
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        d2 = self.blocks(self.enc2(e1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:]), e1], 1))
        d0 = self.dec0(torch.cat([F.interpolate(d1, size=e0.shape[-2:]), e0], 1))
        # A residual on the frame's colour: most looks keep much of it, and learn faster so.
        return x[:, :3] + self.out(torch.cat([d0, x], 1))


def network_input(frame: np.ndarray, guides: Sequence[str]) -> np.ndarray:
    """The network's input for a uint8 RGB frame: float32 (C, H, W), colour centred on 0
    (-0.5..0.5), then the guide channels."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB frame, got {frame.dtype} {frame.shape}")
    channels = [np.moveaxis(frame.astype(np.float32) / 255.0 - 0.5, 2, 0)]
    if "edge" in guides:
        luma = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        gx = cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
        gy = cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
        channels.append(np.hypot(gx, gy)[None] * np.float32(0.25))
    return np.ascontiguousarray(np.concatenate(channels), dtype=np.float32)


def _to_uint8(output: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) network output -> uint8 (H, W, 3)."""
    image = (output[0].permute(1, 2, 0).numpy() + 0.5) * 255.0
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def default_device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------- losses


def neighbourhoods(images: torch.Tensor, scales: Sequence[int] = (1, 2, 4)) -> list[torch.Tensor]:
    """Each pixel's 3x3 neighbourhood of colours, (N_pixels, 27), at each scale (the images
    average-pooled by it): the local statistics the style term matches."""
    out = []
    for scale in scales:
        x = F.avg_pool2d(images, scale) if scale > 1 else images
        if min(x.shape[-2:]) < 3:
            continue
        out.append(F.unfold(x, 3).transpose(1, 2).reshape(-1, 9 * x.shape[1]))
    return out


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Sliced Wasserstein distance (squared, mean over ``directions``) between the point sets
    ``a`` and ``b`` (N, D) each, N equal: sort both projections on each direction and compare
    them rank by rank (Heitz et al. 2021)."""
    pa, _ = torch.sort(a @ directions, dim=0)
    pb, _ = torch.sort(b @ directions, dim=0)
    return torch.mean((pa - pb) ** 2)


@dataclass
class _Pair:
    """Frames t and t+1 of the scene: network inputs, the flow t+1 -> t and the pixels of
    t+1 it does not explain (occluded or leaving the frame)."""

    before: np.ndarray
    after: np.ndarray
    flow: np.ndarray | None
    valid: np.ndarray | None


def _sampled_starts(n_frames: int, settings: NetworkSettings) -> list[int]:
    """The first frames of the pairs the scene's terms read: ``temporal_pairs`` of them,
    spread evenly, so a long scene costs no more than a short one."""
    n = min(settings.temporal_pairs, n_frames - 1)
    return sorted({round(i * (n_frames - 2) / max(n - 1, 1)) for i in range(n)}) if n >= 1 else []


def _pairs(frames: Sequence[np.ndarray], starts: list[int], settings: NetworkSettings) -> list[_Pair]:
    if not settings.uses_temporal:
        return []
    pairs = []
    for t in starts:
        a, b = frames[t], frames[t + 1]
        flow = valid = None
        if settings.temporal_loss == "flow":
            flow = compute_flow(b, a, settings.flow_preset)
            valid = ~occlusion_mask(flow, compute_flow(a, b, settings.flow_preset))
        pairs.append(_Pair(network_input(a, settings.guides), network_input(b, settings.guides), flow, valid))
    return pairs


# -------------------------------------------------------------------------------- training


def _crops(images: Sequence[np.ndarray], size: int, count: int, rng: np.random.Generator,
           *aligned: Sequence[np.ndarray]) -> tuple[torch.Tensor, ...]:
    """``count`` random size x size crops of (C, H, W) ``images``, and the same crops of each
    list in ``aligned`` (images of the same sizes)."""
    picks = [[] for _ in range(1 + len(aligned))]
    for _ in range(count):
        k = int(rng.integers(len(images)))
        h, w = images[k].shape[-2:]
        y, x = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        for pick, source in zip(picks, (images, *aligned)):
            pick.append(source[k][..., y:y + size, x:x + size])
    return tuple(torch.from_numpy(np.stack(p)) for p in picks)


def _temporal_batch(pairs: list[_Pair], settings: NetworkSettings, rng: np.random.Generator):
    """Crops of consecutive frames for the temporal term, the same place in both (with
    FLOW_MARGIN more on each side for the flow loss, whose samples of frame t reach beyond
    the crop of t+1), and for the flow loss the sampling grid of each crop of t+1 in its crop
    of t (grid_sample's -1..1 units) and the pixels it is valid at."""
    margin = FLOW_MARGIN if settings.temporal_loss == "flow" else 0
    size, p = settings.patch_size + 2 * margin, settings.patch_size
    befores, afters, grids, valids = [], [], [], []
    ys, xs = np.mgrid[0:p, 0:p].astype(np.float32) + np.float32(margin)
    for _ in range(settings.temporal_batch):
        pair = pairs[int(rng.integers(len(pairs)))]
        h, w = pair.after.shape[-2:]
        y, x = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        befores.append(pair.before[:, y:y + size, x:x + size])
        afters.append(pair.after[:, y:y + size, x:x + size])
        if margin:
            inner = np.s_[y + margin:y + margin + p, x + margin:x + margin + p]
            sx, sy = xs + pair.flow[inner][..., 0], ys + pair.flow[inner][..., 1]
            inside = (sx >= 0) & (sx <= size - 1) & (sy >= 0) & (sy <= size - 1)
            grids.append(np.stack([2 * sx / (size - 1) - 1, 2 * sy / (size - 1) - 1], -1))
            valids.append(pair.valid[inner] & inside)
    batch = [torch.from_numpy(np.stack(befores)), torch.from_numpy(np.stack(afters))]
    if margin:
        batch += [torch.from_numpy(np.stack(grids)), torch.from_numpy(np.stack(valids)[:, None].astype(np.float32))]
    return batch


def _temporal_loss(model: nn.Module, pairs: list[_Pair], settings: NetworkSettings,
                   rng: np.random.Generator) -> torch.Tensor:
    """Ruder et al.'s flow loss (the output of t+1 against the output of t warped along the
    input's flow, on the pixels the flow explains) or Xu et al.'s frame-difference loss."""
    on = next(model.parameters()).device
    before, after, *flow = (t.to(on) for t in _temporal_batch(pairs, settings, rng))
    out = model(torch.cat([before, after]))
    out_before, out_after = out[:len(before)], out[len(before):]
    if settings.temporal_loss == "difference":
        return torch.mean(((out_after - out_before) - (after[:, :3] - before[:, :3])) ** 2)
    grid, valid = flow
    m, p = FLOW_MARGIN, settings.patch_size
    warped = F.grid_sample(out_before, grid, mode="bilinear", padding_mode="border", align_corners=True)
    difference = ((out_after[:, :, m:m + p, m:m + p] - warped) ** 2).mean(1, keepdim=True)
    return (difference * valid).sum() / valid.sum().clamp(min=1.0)


@dataclass
class TrainingReport:
    """What a training run did: seconds, steps and the last step's loss terms."""

    seconds: float
    iterations: int
    losses: dict[str, float]


def train(keyframes: Sequence[np.ndarray], styled: Sequence[np.ndarray],
          scene_frames: Sequence[np.ndarray], settings: NetworkSettings,
          threads: int | None = None, progress: Callable[[int, dict], None] | None = None,
          device: str | None = None) -> tuple[Generator, TrainingReport]:
    """Train a network that turns each of ``keyframes`` into its ``styled`` version.

    Parameters
    ----------
    keyframes, styled : sequences of uint8 (H, W, 3) RGB
        The scene's keyframes and their styled versions, pair by pair, all of one size.
    scene_frames : sequence of uint8 (H, W, 3) RGB
        The scene's frames in order (keyframes included), for the style and temporal terms;
        only the ``temporal_pairs`` pairs they sample are read (a lazy sequence such as
        :class:`restyle.io.LazyFrames` suits a long scene).
    settings : NetworkSettings
    threads : int, optional
        PyTorch's threads during training (the job's cores).
    progress : callable, optional
        Called as ``progress(step, losses)`` every 100 steps.
    device : str, optional
        PyTorch device to train on; default: CUDA when present, else the CPU.

    Returns
    -------
    model, report

    Notes
    -----
    Deterministic on the CPU, for any thread count: the same inputs and settings give the
    same weights (seeded initialisation and sampling, deterministic kernels).  The model is
    returned on ``device``.
    """
    if len(keyframes) != len(styled) or not keyframes:
        raise ValueError(f"need pairs of keyframes and styled keyframes, got {len(keyframes)} and {len(styled)}")
    uses_scene = settings.uses_temporal or settings.style_weight > 0
    starts = _sampled_starts(len(scene_frames), settings) if uses_scene else []
    sampled = {t: scene_frames[t] for s in starts for t in (s, s + 1)}
    shapes = {f.shape for f in (*keyframes, *styled, *sampled.values())}
    if len(shapes) != 1:
        raise ValueError(f"keyframes, styled keyframes and frames must have one size, got {sorted(shapes)}")
    height, width = next(iter(shapes))[:2]
    reach = settings.patch_size + (2 * FLOW_MARGIN if settings.temporal_loss == "flow" else 0)
    if min(height, width) < reach:
        raise ValueError(f"frames of {width}x{height} are smaller than the network's training crops "
                         f"({reach} px): lower network.patch_size")
    started = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    inputs = [network_input(k, settings.guides) for k in keyframes]
    targets = [np.ascontiguousarray(np.moveaxis(s.astype(np.float32) / 255.0 - 0.5, 2, 0)) for s in styled]
    others = [network_input(sampled[t], settings.guides) for t in starts] if settings.style_weight > 0 else []
    pairs = _pairs(sampled, starts, settings)
    with torch_settings(threads=threads, deterministic=True), torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model = Generator(settings.in_channels, settings.widths, settings.residual_blocks, settings.normalisation)
        on = torch.device(device) if device else default_device()
        model.to(on)
        optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
        projector = torch.Generator().manual_seed(settings.seed + 1)
        model.train()
        losses = {}
        for step in range(settings.iterations):
            x, y = (t.to(on) for t in _crops(inputs, settings.patch_size, settings.batch_size, rng, targets))
            terms = {"reconstruction": F.l1_loss(model(x), y)}
            if settings.style_weight > 0 and others:
                (unpaired,) = _crops(others, settings.patch_size, settings.batch_size, rng)
                (style,) = _crops(targets, settings.patch_size, settings.batch_size, rng)
                swd = []
                for a, b in zip(neighbourhoods(model(unpaired.to(on))), neighbourhoods(style.to(on))):
                    directions = F.normalize(torch.randn(a.shape[1], 32, generator=projector), dim=0).to(on)
                    swd.append(sliced_wasserstein(a, b, directions))
                terms["style"] = torch.stack(swd).sum()
            if pairs:
                terms["temporal"] = _temporal_loss(model, pairs, settings, rng)
            weights = {"reconstruction": settings.reconstruction_weight, "style": settings.style_weight,
                       "temporal": settings.temporal_weight}
            loss = sum(weights[k] * v for k, v in terms.items())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if progress is not None and (step + 1) % 100 == 0:
                progress(step + 1, {k: float(v.detach()) for k, v in terms.items()})
            if step + 1 == settings.iterations:
                losses = {k: float(v.detach()) for k, v in terms.items()}
    model.eval()
    return model, TrainingReport(time.perf_counter() - started, settings.iterations, losses)


# ------------------------------------------------------------------------------- inference


def stylize_frame(model: Generator, frame: np.ndarray, guides: Sequence[str],
                  threads: int | None = None) -> np.ndarray:
    """The network's styled version of a uint8 RGB frame (any size), uint8 (H, W, 3)."""
    x = torch.from_numpy(network_input(frame, guides))[None].to(next(model.parameters()).device)
    with torch_settings(threads=threads, deterministic=True), torch.inference_mode():
        return _to_uint8(model(x).cpu())


def keyframe_weights(t: int, left: int, right: int) -> list[tuple[int, float]]:
    """``[(keyframe, weight)]`` of frame ``t`` between consecutive keyframes ``left`` and
    ``right``: linear in ``t``, 1 at a keyframe, summing to 1."""
    if not left <= t <= right:
        raise ValueError(f"frame {t} is not between keyframes {left} and {right}")
    if right == left:
        return [(left, 1.0)]
    share = (t - left) / (right - left)
    return [(k, w) for k, w in ((left, 1.0 - share), (right, share)) if w > 0]


def carry_keyframe_residuals(frame: np.ndarray, rendered: np.ndarray,
                             neighbours: Sequence[tuple[float, np.ndarray, np.ndarray]],
                             flow_preset: str = "medium") -> np.ndarray:
    """The network's frame with its neighbouring keyframes' residuals carried onto it.

    A keyframe comes out as styled, not as the network renders it; without this, the
    difference between the two would appear and vanish at each keyframe.  Each keyframe's
    residual ``styled_k - N(I_k)`` is warped onto the frame along the flow from the frame to
    the keyframe and added with the keyframe's weight (:func:`keyframe_weights`), except
    where the forward-backward check finds no match (content the keyframe does not show).

    Parameters
    ----------
    frame, rendered : uint8 (H, W, 3)
        The input frame and the network's output on it.
    neighbours : sequence of (weight, keyframe, residual)
        The input keyframe (uint8 (H, W, 3)) and its residual (float32 (H, W, 3)).
    flow_preset : str

    Returns
    -------
    uint8 (H, W, 3)
    """
    out = rendered.astype(np.float32)
    for weight, keyframe, residual in neighbours:
        to_key = compute_flow(frame, keyframe, flow_preset)
        explained = ~occlusion_mask(to_key, compute_flow(keyframe, frame, flow_preset))
        out += np.float32(weight) * explained[..., None] * warp(residual, to_key)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def residual(styled: np.ndarray, rendered: np.ndarray) -> np.ndarray:
    """``styled - rendered`` as float32: what the network misses of a styled keyframe."""
    return styled.astype(np.float32) - rendered.astype(np.float32)


# ---------------------------------------------------------------------------------- saving


def save(path: str | os.PathLike, model: Generator, settings: NetworkSettings,
         report: TrainingReport | None = None) -> None:
    """The trained weights as safetensors (no pickle), with what rebuilds the network in
    the file's metadata; written atomically."""
    from safetensors.torch import save_file

    metadata = {"format": FORMAT, "settings": json.dumps(dataclasses.asdict(settings))}
    if report is not None:
        metadata["training"] = json.dumps(dataclasses.asdict(report))
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with io.staged_file(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)


def load(path: str | os.PathLike, device: str | None = None) -> tuple[Generator, NetworkSettings]:
    """A network saved by :func:`save`, ready for :func:`stylize_frame` on ``device``
    (default: CUDA when present, else the CPU), and its settings."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error}); delete it to train again") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: not a restyle network (format {metadata.get('format')!r}); "
                         f"delete it to train again")
    settings = NetworkSettings(**json.loads(metadata["settings"]))
    model = Generator(settings.in_channels, settings.widths, settings.residual_blocks, settings.normalisation)
    model.load_state_dict(tensors)
    model.to(torch.device(device) if device else default_device())
    model.eval()
    return model, settings

