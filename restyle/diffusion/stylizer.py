"""Diffusion keyframe stylizer: Stable Diffusion img2img with keyframes that agree.

Stylizing keyframes independently gives each its own interpretation of the prompt, and the
propagated video then pulses at every keyframe.  Two mechanisms tie keyframes together
(both on by default, each can be switched off):

* **shared initial noise** -- every keyframe starts from the same noise tensor, drawn from
  ``seed`` with a CPU ``torch.Generator`` (identical on every device), so the random part
  of each result is the same and only the frames' own content differs.  A keyframe whose
  seed is overridden draws its own noise.  The image is encoded with the VAE's mean, not a
  sample, so nothing else is random (DiffSynth's deterministic VAE);
* **cross-frame attention** (Rerender) -- the UNet decoder's self-attention of keyframe
  ``k`` also attends to the scene's first keyframe and keyframe ``k - 1`` at the same
  denoising step (:mod:`restyle.diffusion.attention`).

Record and reference across jobs
--------------------------------
The workflow renders one keyframe per job, so references travel as files: rendering a
keyframe can *record* its decoder self-attention inputs (an
:class:`~restyle.diffusion.attention.AttentionRecord`, saved with safetensors), and a
later keyframe is rendered with ``references=[record_of_first, record_of_previous]``.

Per-keyframe overrides (``overrides={index: {"prompt": ..., "strength": ..., "seed": ...}}``)
must change *only* their keyframe.  Were an overridden keyframe's record used as a
reference, the override would leak into every later keyframe of the scene, so records are
always made with the base settings: :meth:`DiffusionStylizer.record_reference` renders a
keyframe with the base prompt/strength/seed and returns the image *and* the record.  A
keyframe job therefore does::

    image, record = stylizer.keyframe(frame, index, references=[first, previous])
    record.save(...)  # this keyframe's reference for the keyframes after it

:meth:`DiffusionStylizer.keyframe` runs :meth:`record_reference` and, only when the keyframe
has an override, a second pass :meth:`stylize` with the override on top (same references);
without an override the base image *is* the output, so no work is duplicated.

Plain ``stylizer(frame, index)`` (the :class:`restyle.stylize.Stylizer` interface) uses the
keyframe's settings with shared noise but no references, so it is a pure function of its
arguments.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import cv2
import numpy as np
import torch

from .attention import AttentionRecord, CrossFrameState, install_cross_frame_attention
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


def canny_control(frame: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """Canny edges of ``frame`` as a 3-channel uint8 image (the ControlNet canny hint format)."""
    edges = cv2.Canny(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), low, high)
    return np.repeat(edges[..., None], 3, axis=2)


class DiffusionStylizer:
    """Stable Diffusion img2img keyframe stylizer with consistent keyframes.

    Parameters
    ----------
    model_path : str or path-like, optional
        Local diffusers directory or ``.safetensors`` checkpoint (see
        :func:`restyle.diffusion.loading.load_pipeline`).  Give this or ``pipeline``.
    pipeline : diffusers pipeline, optional
        An already loaded img2img pipeline.  The stylizer sets its scheduler and installs
        its attention processors on it (again whenever another stylizer took them over), so
        stylizers may share a pipeline one call at a time, not concurrently.
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
    overrides : mapping, optional
        ``{frame_index: {"prompt"|"negative_prompt"|"strength"|"seed"|"guidance": value}}``;
        each changes only its own keyframe (see the module docstring).
    shared_noise : bool
        Same noise for every keyframe (else keyframe ``i`` uses ``seed + i``).
    cross_frame_attention : bool
        Record and use attention references; when off, ``references`` are ignored and no
        records are made.
    cross_frame_blocks : sequence of int, optional
        Restrict cross-frame attention (and records) to these ``up_blocks``.
    controlnet_path : str or path-like, optional
        A diffusers ControlNet directory, conditioned on ``control`` of the frame.
    control : {"canny", "none"}
        Control image computed from the frame; ``"none"`` disables the ControlNet.
    controlnet_conditioning_scale : float
        Weight of the ControlNet residuals.
    canny_thresholds : (int, int)
        Hysteresis thresholds of the canny control.
    config : str or path-like, optional
        Component configs for a single-file checkpoint (see ``load_pipeline``).
    device, dtype : optional
        Defaults: CUDA fp16 if available, else CPU fp32.
    deterministic : bool
        Ask PyTorch for deterministic kernels (``use_deterministic_algorithms``, warn-only;
        process-wide).
    torch_threads : int, optional
        ``torch.set_num_threads`` (process-wide).  Give it the job's core count: on a shared
        machine PyTorch's default can oversubscribe the cores and run many times slower.
    """

    def __init__(self, model_path=None, *, pipeline=None, prompt: str = "", negative_prompt: str = "",
                 strength: float = 0.5, steps: int = 20, guidance: float = 7.5, seed: int = 0,
                 scheduler: str = "ddim", overrides: Mapping | None = None, shared_noise: bool = True,
                 cross_frame_attention: bool = True, cross_frame_blocks: Iterable[int] | None = None,
                 controlnet_path=None, control: str = "canny", controlnet_conditioning_scale: float = 1.0,
                 canny_thresholds: tuple[int, int] = (100, 200), config=None, device=None, dtype=None,
                 deterministic: bool = True, torch_threads: int | None = None):
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

        if torch_threads is not None:
            torch.set_num_threads(int(torch_threads))
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
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
            self._ensure_attention_installed()

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

    def has_override(self, frame_index: int) -> bool:
        return int(frame_index) in self.overrides

    # ------------------------------------------------------------------------ entry points
    def __call__(self, frame: np.ndarray, frame_index: int) -> np.ndarray:
        """Stylize one keyframe on its own (no references); see :meth:`keyframe` for chains."""
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

    def keyframe(self, frame: np.ndarray, frame_index: int,
                 references: Iterable = ()) -> tuple[np.ndarray, AttentionRecord | None]:
        """What a keyframe job needs: the keyframe's output image and its reference record.

        One denoising run without an override; with one, a second run applies it (the
        reference record still comes from the base run).
        """
        references = self._load_references(references)
        image, record = self.record_reference(frame, frame_index, references)
        if self.has_override(frame_index):
            image, _ = self.stylize(frame, frame_index, references)
        return image, record

    def stylize_batch(self, frames: list[np.ndarray], frame_indices: list[int], deflicker_steps=(),
                      deflicker_weight: float = 1.0, deflicker_radius: int = 1,
                      flow_preset: str = "medium") -> list[np.ndarray]:
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
            DIS preset for the alignment flows.

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
        multiple = max(8, int(getattr(self.pipeline, "vae_scale_factor", 8)))
        work_h, work_w = working_size(height, width, multiple)
        images = [_resize(np.ascontiguousarray(frame), work_h, work_w) for frame in frames]
        negatives = [s["negative_prompt"] or "" for s in settings]
        options = dict(
            prompt=[s["prompt"] for s in settings],
            negative_prompt=negatives if any(negatives) else None,
            strength=strength, num_inference_steps=self.steps, guidance_scale=float(settings[0]["guidance"]),
            output_type="np",
            # One CPU generator per keyframe: shared noise gives every keyframe the same draw.
            generator=[torch.Generator("cpu").manual_seed(int(s["seed"])) for s in settings],
        )
        if self.uses_controlnet:
            options.update(control_image=torch.cat([self._control_image(image) for image in images]),
                           controlnet_conditioning_scale=self.controlnet_conditioning_scale)
        self.state.reset()
        deflicker = contextlib.nullcontext()
        if deflicker_steps:
            alignment = align_frames(images, radius=deflicker_radius, preset=flow_preset)
            deflicker = latent_deflicker(self.pipeline, alignment, deflicker_steps, deflicker_weight)
        with torch.inference_mode():
            options["image"] = torch.cat([self._encode(image) for image in images])
        with deflicker, torch.inference_mode():
            results = self.pipeline(**options).images
        styled = [np.clip(np.rint(np.asarray(r, np.float32) * 255.0), 0, 255).astype(np.uint8) for r in results]
        return [_resize(image, height, width) for image in styled]

    # ---------------------------------------------------------------------------- internals
    def _ensure_attention_installed(self) -> None:
        """Make this stylizer's processors the UNet's, even if another stylizer took it over."""
        unet = self.pipeline.unet
        installed = [unet.get_submodule(name).processor for name in self.attention_layers]
        if not installed or any(getattr(p, "state", None) is not self.state for p in installed):
            self.attention_layers = install_cross_frame_attention(unet, self.state, self.cross_frame_blocks)

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
        """VAE latents of ``image`` using the posterior mean (no sampling noise)."""
        pipe = self.pipeline
        vae = pipe.vae
        pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)
        upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
        encode_dtype = torch.float32 if upcast else vae.dtype
        if upcast:
            vae.to(torch.float32)  # SDXL's VAE overflows in fp16
        try:
            posterior = vae.encode(pixels.to(vae.device, encode_dtype)).latent_dist
            latents = posterior.mean
        finally:
            if upcast:
                vae.to(torch.float16)
        config = vae.config
        if getattr(config, "latents_mean", None) is not None and getattr(config, "latents_std", None) is not None:
            mean = torch.tensor(config.latents_mean, device=latents.device).view(1, -1, 1, 1)
            std = torch.tensor(config.latents_std, device=latents.device).view(1, -1, 1, 1)
            latents = (latents - mean) * config.scaling_factor / std
        else:
            latents = latents * config.scaling_factor
        return latents.to(pipe.unet.dtype)

    def _control_image(self, image: np.ndarray) -> torch.Tensor:
        hint = canny_control(image, *self.canny_thresholds)
        return torch.from_numpy(hint).permute(2, 0, 1)[None].float().div(255.0)

    def _run(self, frame: np.ndarray, frame_index: int, settings: dict, references: Iterable,
             record: bool) -> tuple[np.ndarray, AttentionRecord | None]:
        _validate_frame(frame)
        self._check_settings(settings["strength"], self.steps, where=f"frame {frame_index}")
        height, width = frame.shape[:2]
        multiple = max(8, int(getattr(self.pipeline, "vae_scale_factor", 8)))
        work_h, work_w = working_size(height, width, multiple)
        image = _resize(np.ascontiguousarray(frame), work_h, work_w)

        recording = None
        if self.cross_frame_attention:
            self._ensure_attention_installed()
            self.state.references = self._load_references(references)
            if record:
                recording = AttentionRecord(metadata=self._record_metadata(frame_index, settings, work_h, work_w))
                self.state.recording = recording
        options = dict(
            prompt=settings["prompt"], negative_prompt=settings["negative_prompt"] or None,
            strength=float(settings["strength"]), num_inference_steps=self.steps,
            guidance_scale=float(settings["guidance"]), output_type="np",
            # Noise is drawn on the CPU: the same bytes on every device and every run.
            generator=torch.Generator("cpu").manual_seed(int(settings["seed"])),
        )
        if self.uses_controlnet:
            options.update(control_image=self._control_image(image),
                           controlnet_conditioning_scale=self.controlnet_conditioning_scale)
        try:
            with torch.inference_mode():
                options["image"] = self._encode(image)
                result = self.pipeline(**options).images[0]
        finally:
            self.state.reset()
        styled = np.clip(np.rint(np.asarray(result, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
        return _resize(styled, height, width), recording

    def _record_metadata(self, frame_index: int, settings: dict, height: int, width: int) -> dict:
        prompt_digest = hashlib.sha256(f"{settings['prompt']}\0{settings['negative_prompt']}".encode()).hexdigest()
        return {"frame_index": str(int(frame_index)), "height": str(height), "width": str(width),
                "steps": str(self.steps), "strength": repr(float(settings["strength"])),
                "seed": str(int(settings["seed"])), "guidance": repr(float(settings["guidance"])),
                "scheduler": type(self.pipeline.scheduler).__name__, "prompt_sha256": prompt_digest[:16]}


def make_diffusion_stylizer(**options) -> DiffusionStylizer:
    """Factory for :data:`restyle.stylize.BACKENDS` (``backend: diffusion`` in the config)."""
    return DiffusionStylizer(**options)


def keyframe_reference_paths(record_dir: str | os.PathLike, scene_keyframes: list[int],
                             frame_index: int) -> list[Path]:
    """Record files keyframe ``frame_index`` should reference: its scene's first and previous.

    ``scene_keyframes`` are the scene's keyframe indices in order; records are expected at
    ``record_dir / f"{index:05d}.safetensors"``.  The first keyframe references nothing.
    """
    from restyle.keyframes import reference_keyframes

    return [Path(record_dir) / f"{index:05d}.safetensors"
            for index in reference_keyframes(scene_keyframes, frame_index)]
