"""Diffusion keyframe stylizer: Stable Diffusion img2img with keyframes that agree.

Stylizing keyframes independently gives each its own interpretation of the prompt, and the
propagated video then pulses at every keyframe.  Two mechanisms tie keyframes together
(both on by default, each can be switched off):

* **shared initial noise** -- every keyframe starts from the same noise tensor, drawn from
  ``seed`` with a CPU ``torch.Generator`` (identical on every device), so the random part
  of each result is the same and only the frames' own content differs.  A keyframe whose
  seed is overridden draws its own noise.  The image is encoded with the VAE's mean, not a
  sample, so nothing else is random (:mod:`restyle.diffusion.vae`);
* **cross-frame attention** (Rerender: Yang et al., "Rerender A Video", SIGGRAPH Asia 2023,
  arXiv:2306.07954) -- the UNet decoder's self-attention of keyframe ``k`` also attends to
  the scene's first keyframe and keyframe ``k - 1`` at the same denoising step
  (:mod:`restyle.diffusion.attention`).

Record and reference across jobs
--------------------------------
The workflow renders one keyframe per job, so references travel as files: rendering a
keyframe can *record* its decoder self-attention inputs (an
:class:`~restyle.diffusion.attention.AttentionRecord`, saved with safetensors), and a
later keyframe is rendered with ``references=[record_of_first, record_of_previous]``.

Per-keyframe overrides (``overrides={index: {"prompt": ..., "strength": ..., "seed": ...}}``)
must change *only* their keyframe.  Were an overridden keyframe's record used as a
reference, the override would leak into every later keyframe of the scene, so records are
always made with the base settings.  A keyframe therefore takes one or two runs::

    image, record = stylizer.record_reference(frame, index, references=[first, previous])
    record.save(...)  # this keyframe's reference for the keyframes after it
    if index in stylizer.overrides:  # the keyframe's own look, on the same references
        image, _ = stylizer.stylize(frame, index, references=[first, previous])

Without an override the base image *is* the output, so no work is duplicated.

Plain ``stylizer(frame, index)`` (the :class:`restyle.stylize.Stylizer` interface) uses the
keyframe's settings with shared noise but no references, so it is a pure function of its
arguments.

Nothing here changes the process or the pipeline between calls: PyTorch's thread count and
deterministic mode apply only inside each call (:func:`torch_settings`), and the attention
processors only during each run (:func:`~restyle.diffusion.attention.cross_frame_attention`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import cv2
import numpy as np
import torch

from . import vae
from .attention import AttentionRecord, CrossFrameState, cross_frame_attention, decoder_self_attention_layers
from ..torch_runtime import torch_settings
from .loading import load_pipeline, set_scheduler

OVERRIDE_KEYS = ("prompt", "negative_prompt", "strength", "seed", "guidance")
CONTROLS = ("canny", "none")


def _validate_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"expected a uint8 (H, W, 3) RGB frame, got {got}")


def working_size(height: int, width: int, multiple: int = 8) -> tuple[int, int]:
    """The nearest size whose sides are multiples of ``multiple`` (at least one multiple)."""
    return (max(multiple, round(height / multiple) * multiple),
            max(multiple, round(width / multiple) * multiple))


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def canny_control(frame: np.ndarray, low: int, high: int) -> np.ndarray:
    """Canny edges of ``frame`` as a 3-channel uint8 image (the ControlNet canny hint format)."""
    edges = cv2.Canny(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), low, high)
    return np.repeat(edges[..., None], 3, axis=2)


def _to_uint8(result) -> np.ndarray:
    """A pipeline's float image in [0, 1] as uint8."""
    return np.clip(np.rint(np.asarray(result, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


class DiffusionStylizer:
    """Stable Diffusion img2img keyframe stylizer with consistent keyframes.

    The settings that are workflow options have no default here: the workflow's config
    schema holds them (``stylizer`` in ``workflow/schemas/config.schema.yaml``).

    Parameters
    ----------
    model_path : str or path-like, optional
        Local diffusers directory or ``.safetensors`` checkpoint (see
        :func:`restyle.diffusion.loading.load_pipeline`).  Give this or ``pipeline``.
    pipeline : diffusers pipeline, optional
        An already loaded img2img pipeline.  The stylizer sets its scheduler on it at once
        and its attention processors during each run only, so stylizers may share a
        pipeline one call at a time, not concurrently.
    prompt, negative_prompt : str
        Base text conditioning.
    strength : float
        img2img strength in (0, 1]: the fraction of the schedule re-generated; low keeps the
        frame's layout, high follows the prompt.
    steps : int
        Scheduler steps for the full schedule (``int(steps * strength)`` are run).
    guidance : float
        Classifier-free guidance scale (``<= 1`` disables guidance and halves the work).
    seed : int
        Seed of the shared initial noise.
    scheduler : str
        One of :data:`restyle.diffusion.loading.SCHEDULERS`.
    shared_noise : bool
        Same noise for every keyframe (else keyframe ``i`` uses ``seed + i``).
    cross_frame_attention : bool
        Record and use attention references; when off, ``references`` are ignored and no
        records are made.
    control : {"canny", "none"}
        Control image computed from the frame for a ControlNet; ``"none"`` disables the
        ControlNet.  A plain pipeline ignores it.
    controlnet_conditioning_scale : float
        Weight of the ControlNet residuals.
    overrides : mapping, optional
        ``{frame_index: {"prompt"|"negative_prompt"|"strength"|"seed"|"guidance": value}}``;
        each changes only its own keyframe (see the module docstring).
    cross_frame_blocks : sequence of int, optional
        Restrict cross-frame attention (and records) to these ``up_blocks``.
    controlnet_path : str or path-like, optional
        A diffusers ControlNet directory, conditioned on ``control`` of the frame.
    canny_thresholds : (int, int)
        Hysteresis thresholds of the canny control.
    config : str or path-like, optional
        Component configs for a single-file checkpoint (see ``load_pipeline``).
    device, dtype : optional
        Defaults: CUDA fp16 if available, else CPU fp32.
    deterministic : bool
        Deterministic PyTorch kernels during each call (see :func:`torch_settings`).
    torch_threads : int, optional
        PyTorch's thread count during each call (see :func:`torch_settings`).
    """

    def __init__(self, model_path=None, *, pipeline=None, prompt: str, negative_prompt: str, strength: float,
                 steps: int, guidance: float, seed: int, scheduler: str, shared_noise: bool,
                 cross_frame_attention: bool, control: str, controlnet_conditioning_scale: float,
                 overrides: Mapping | None = None, cross_frame_blocks: Iterable[int] | None = None,
                 controlnet_path=None, canny_thresholds: tuple[int, int] = (100, 200), config=None, device=None,
                 dtype=None, deterministic: bool = True, torch_threads: int | None = None):
        if control not in CONTROLS:
            raise ValueError(f"unknown control {control!r}; use one of {list(CONTROLS)}")
        if (model_path is None) == (pipeline is None):
            raise ValueError("give exactly one of model_path and pipeline")
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.strength = float(strength)
        self.steps = int(steps)
        self.guidance = float(guidance)
        self.seed = int(seed)
        self.shared_noise = bool(shared_noise)
        self.cross_frame_attention = bool(cross_frame_attention)
        self.control = control
        self.controlnet_conditioning_scale = float(controlnet_conditioning_scale)
        self.canny_thresholds = tuple(int(t) for t in canny_thresholds)
        self.overrides = self._parse_overrides(overrides or {})
        self._check_settings(self.strength, self.steps, where="base settings")
        for index, override in self.overrides.items():
            self._check_settings(override.get("strength", self.strength), self.steps, where=f"override {index}")
        self.torch_threads = None if torch_threads is None else int(torch_threads)
        self.deterministic = bool(deterministic)

        with self._torch_settings():
            if pipeline is None:
                use_controlnet = controlnet_path is not None and control != "none"
                pipeline = load_pipeline(model_path, controlnet_path=controlnet_path if use_controlnet else None,
                                         scheduler=scheduler, device=device, dtype=dtype, config=config)
            else:
                set_scheduler(pipeline, scheduler)
                pipeline.set_progress_bar_config(disable=True)
        self.pipeline = pipeline
        # The control image only matters to a ControlNet pipeline; a plain one ignores `control`.
        self.uses_controlnet = getattr(pipeline, "controlnet", None) is not None
        if self.uses_controlnet and control == "none":
            raise ValueError("control='none' with a ControlNet pipeline: load the pipeline without controlnet_path")
        self.state = CrossFrameState()
        self.cross_frame_blocks = None if cross_frame_blocks is None else [int(b) for b in cross_frame_blocks]
        self.attention_layers: list[str] = []
        if self.cross_frame_attention:
            self.attention_layers = sorted(decoder_self_attention_layers(pipeline.unet, self.cross_frame_blocks))

    # ----------------------------------------------------------------------------- settings
    @staticmethod
    def _parse_overrides(overrides: Mapping) -> dict[int, dict]:
        parsed = {}
        for key, values in overrides.items():
            unknown = set(values) - set(OVERRIDE_KEYS)
            if unknown:
                raise ValueError(f"override for frame {key} has unknown keys {sorted(unknown)}; "
                                 f"use {list(OVERRIDE_KEYS)}")
            parsed[int(key)] = dict(values)  # YAML/JSON configs give string keys
        return parsed

    @staticmethod
    def _check_settings(strength: float, steps: int, where: str) -> None:
        if not 0.0 < float(strength) <= 1.0:
            raise ValueError(f"{where}: strength must be in (0, 1], got {strength}")
        if int(int(steps) * float(strength)) < 1:
            raise ValueError(f"{where}: steps x strength = {steps} x {strength} runs no denoising step; "
                             "raise steps or strength")

    def base_settings(self, frame_index: int) -> dict:
        """The settings every keyframe would get without overrides (what references use)."""
        return dict(prompt=self.prompt, negative_prompt=self.negative_prompt, strength=self.strength,
                    guidance=self.guidance,
                    seed=self.seed if self.shared_noise else self.seed + int(frame_index))

    def settings(self, frame_index: int) -> dict:
        """The base settings with ``frame_index``'s override (if any) on top."""
        settings = self.base_settings(frame_index)
        settings.update(self.overrides.get(int(frame_index), {}))
        return settings

    # ------------------------------------------------------------------------ entry points
    def __call__(self, frame: np.ndarray, frame_index: int) -> np.ndarray:
        """Stylize one keyframe on its own (no references); see the module docstring for chains."""
        return self.stylize(frame, frame_index)[0]

    def stylize(self, frame: np.ndarray, frame_index: int, references: Iterable = (),
                record: bool = False) -> tuple[np.ndarray, AttentionRecord | None]:
        """Stylize ``frame`` with its own settings (override included).

        Parameters
        ----------
        frame : ndarray, uint8 (H, W, 3) RGB
        frame_index : int
            Selects the override and (without shared noise) the seed.
        references : iterable of AttentionRecord or path-like
            Records of earlier keyframes to attend to (typically the scene's first and the
            previous keyframe); paths are loaded.  Ignored without cross-frame attention.
        record : bool
            Also return this run's attention record.  Note a record made with an override
            should not serve as a reference (use :meth:`record_reference`).

        Returns
        -------
        image : ndarray, uint8 (H, W, 3)
        record : AttentionRecord or None
        """
        return self._run(frame, frame_index, self.settings(frame_index), references, record)

    def record_reference(self, frame: np.ndarray, frame_index: int,
                         references: Iterable = ()) -> tuple[np.ndarray, AttentionRecord | None]:
        """Stylize with the *base* settings and record: the keyframe's reference for later ones.

        Overrides are ignored here on purpose, so they never leak into other keyframes.  The
        image equals ``stylize(...)[0]`` when the keyframe has no override.  The record is
        ``None`` when cross-frame attention is off.
        """
        return self._run(frame, frame_index, self.base_settings(frame_index), references, record=True)

    def stylize_batch(self, frames: list[np.ndarray], frame_indices: list[int], *, deflicker_steps: Iterable[int],
                      deflicker_weight: float, deflicker_radius: int, flow_preset: str) -> list[np.ndarray]:
        """Stylize several keyframes of one scene in one batched run, optionally deflickered.

        The alternative to cross-frame references when a scene's keyframes fit one job:
        DiffSynth's latent in-iteration deflickering (:mod:`restyle.diffusion.deflicker`)
        makes neighbouring keyframes agree at the denoising steps ``deflicker_steps``
        (0-based among the ``int(steps * strength)`` steps run), aligning them by optical
        flow of the input frames.  Prompts and seeds may differ per keyframe (overrides);
        strength and guidance must be the same for the whole batch.  No attention references
        are used or recorded.

        Parameters
        ----------
        frames : list of ndarray, uint8 (H, W, 3)
            The scene's keyframes in order, all the same size.
        frame_indices : list of int
        deflicker_steps : iterable of int
            Steps at which to deflicker; empty for a plain batched run.
        deflicker_weight, deflicker_radius : float, int
            Weight of each aligned neighbour and how many neighbours on each side
            (see :func:`~restyle.diffusion.deflicker.blend_aligned`).
        flow_preset : str
            DIS preset for the alignment flows (see :func:`restyle.flow.compute_flow`).

        Returns
        -------
        list of ndarray, uint8 (H, W, 3)
        """
        from .deflicker import align_frames, latent_deflicker

        if len(frames) != len(frame_indices) or not frames:
            raise ValueError("give one frame index per frame, and at least one frame")
        for frame in frames:
            _validate_frame(frame)
        if len({frame.shape for frame in frames}) != 1:
            raise ValueError("the frames of a batch must all have the same size")
        settings = [self.settings(index) for index in frame_indices]
        for key in ("strength", "guidance"):
            if len({float(s[key]) for s in settings}) != 1:
                raise ValueError(f"a batch needs one {key} for all its keyframes; overrides give several")
        strength = float(settings[0]["strength"])
        self._check_settings(strength, self.steps, where="batch")
        run_steps = int(self.steps * strength)
        deflicker_steps = sorted({int(s) for s in deflicker_steps})
        if deflicker_steps and not 0 <= deflicker_steps[0] <= deflicker_steps[-1] < run_steps:
            raise ValueError(f"deflicker_steps must lie in [0, {run_steps}) (steps x strength), got {deflicker_steps}")

        height, width = frames[0].shape[:2]
        images = [self._working_image(frame) for frame in frames]
        negatives = [s["negative_prompt"] or "" for s in settings]
        options = dict(
            prompt=[s["prompt"] for s in settings],
            negative_prompt=negatives if any(negatives) else None,
            strength=strength, num_inference_steps=self.steps, guidance_scale=float(settings[0]["guidance"]),
            output_type="np",
            # One CPU generator per keyframe: shared noise gives every keyframe the same draw.
            generator=[torch.Generator("cpu").manual_seed(int(s["seed"])) for s in settings],
        )
        deflicker = contextlib.nullcontext()
        if deflicker_steps:
            alignment = align_frames(images, radius=deflicker_radius, preset=flow_preset)
            deflicker = latent_deflicker(self.pipeline, alignment, deflicker_steps, deflicker_weight)
        with self._torch_settings(), self._attention():
            if self.uses_controlnet:
                options.update(control_image=torch.cat([self._control_image(image) for image in images]),
                               controlnet_conditioning_scale=self.controlnet_conditioning_scale)
            with torch.inference_mode():
                options["image"] = torch.cat([self._encode(image) for image in images])
            with deflicker, torch.inference_mode():
                results = self.pipeline(**options).images
        return [_resize(_to_uint8(result), height, width) for result in results]

    # ---------------------------------------------------------------------------- internals
    def _torch_settings(self):
        return torch_settings(self.torch_threads, self.deterministic)

    @contextlib.contextmanager
    def _attention(self) -> Iterator[None]:
        """This stylizer's cross-frame attention on the UNet for one run (nothing when off)."""
        if not self.cross_frame_attention:
            yield
            return
        try:
            with cross_frame_attention(self.pipeline.unet, self.state, self.cross_frame_blocks):
                yield
        finally:
            self.state.reset()

    def _working_image(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` at the nearest size the VAE and UNet take (multiples of the latent scale)."""
        multiple = max(8, int(getattr(self.pipeline, "vae_scale_factor", 8)))
        work_h, work_w = working_size(*frame.shape[:2], multiple)
        return _resize(np.ascontiguousarray(frame), work_h, work_w)

    def _load_references(self, references: Iterable) -> list[AttentionRecord]:
        loaded = []
        seen_paths = set()
        for reference in references or ():
            if reference is None:
                continue
            if not isinstance(reference, AttentionRecord):
                # The first and previous keyframe are the same file for the second keyframe.
                resolved = Path(reference).resolve()
                if resolved in seen_paths:
                    continue
                seen_paths.add(resolved)
                reference = AttentionRecord.load(reference)
            if not any(reference is seen for seen in loaded):
                loaded.append(reference)
        return loaded

    def _encode(self, image: np.ndarray) -> torch.Tensor:
        pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)
        return vae.encode(self.pipeline, pixels)

    def _control_image(self, image: np.ndarray) -> torch.Tensor:
        hint = canny_control(image, *self.canny_thresholds)
        return torch.from_numpy(hint).permute(2, 0, 1)[None].float().div(255.0)

    def _run(self, frame: np.ndarray, frame_index: int, settings: dict, references: Iterable,
             record: bool) -> tuple[np.ndarray, AttentionRecord | None]:
        _validate_frame(frame)
        self._check_settings(settings["strength"], self.steps, where=f"frame {frame_index}")
        height, width = frame.shape[:2]
        image = self._working_image(frame)
        options = dict(
            prompt=settings["prompt"], negative_prompt=settings["negative_prompt"] or None,
            strength=float(settings["strength"]), num_inference_steps=self.steps,
            guidance_scale=float(settings["guidance"]), output_type="np",
            # Noise is drawn on the CPU: the same bytes on every device and every run.
            generator=torch.Generator("cpu").manual_seed(int(settings["seed"])),
        )
        recording = None
        with self._torch_settings(), self._attention():
            if self.cross_frame_attention:
                self.state.references = self._load_references(references)
                if record:
                    recording = AttentionRecord(metadata=self._record_metadata(frame_index, settings, *image.shape[:2]))
                    self.state.recording = recording
            if self.uses_controlnet:
                options.update(control_image=self._control_image(image),
                               controlnet_conditioning_scale=self.controlnet_conditioning_scale)
            with torch.inference_mode():
                options["image"] = self._encode(image)
                result = self.pipeline(**options).images[0]
        return _resize(_to_uint8(result), height, width), recording

    def _record_metadata(self, frame_index: int, settings: dict, height: int, width: int) -> dict:
        prompt_digest = hashlib.sha256(f"{settings['prompt']}\0{settings['negative_prompt']}".encode()).hexdigest()
        return {"frame_index": str(int(frame_index)), "height": str(height), "width": str(width),
                "steps": str(self.steps), "strength": repr(float(settings["strength"])),
                "seed": str(int(settings["seed"])), "guidance": repr(float(settings["guidance"])),
                "scheduler": type(self.pipeline.scheduler).__name__, "prompt_sha256": prompt_digest[:16]}
