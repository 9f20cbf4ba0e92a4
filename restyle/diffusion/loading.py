"""Load Stable Diffusion img2img pipelines from local files only, safely.

Two layouts are accepted:

* a **diffusers directory** (the folder holding ``model_index.json``, ``unet/``, ``vae/``,
  ``text_encoder/`` ...), as written by ``save_pretrained``.  SDXL is told apart from SD
  1.x/2.x by ``model_index.json`` (its class name, or a second text encoder);
* a **single ``.safetensors`` checkpoint** (the A1111/ComfyUI layout).  diffusers can only
  build a pipeline around one if it knows the component configs; without a local copy it
  would fetch them from the Hub (it even lifts ``local_files_only`` to do so).  So a
  single file needs ``config=``: a local diffusers directory of the *same architecture*
  (``model_index.json``, ``*/config.json``, ``scheduler/``, ``tokenizer*/``; its weights
  are not needed and not read).

Loading never reaches the network (``HF_HUB_OFFLINE=1``, ``local_files_only=True``), never
unpickles (``use_safetensors=True``; ``.ckpt``/``.bin``/``.pt`` are refused), never runs
code shipped with a model (``trust_remote_code=False``), and loads no safety checker.
Every problem with the paths is a :class:`DiffusionModelError` whose message is one line
naming the path and the fix.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")
WEIGHT_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")

# name -> diffusers scheduler class; all are built from the model's own scheduler config.
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "pndm": "PNDMScheduler",
    "lms": "LMSDiscreteScheduler",
}


class DiffusionModelError(ValueError):
    """A model path that cannot be loaded; the message is one line: the path and the fix."""


def force_offline() -> None:
    """Make every Hugging Face Hub request fail instead of reaching the network.

    The environment variables cover libraries imported later; ``huggingface_hub`` reads
    ``HF_HUB_OFFLINE`` once at import, so its already-loaded constant is set too.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    try:
        import huggingface_hub.constants as hub_constants
    except ImportError:  # pragma: no cover - diffusers depends on it
        return
    hub_constants.HF_HUB_OFFLINE = True


def _fail(message: str) -> DiffusionModelError:
    return DiffusionModelError(" ".join(str(message).split()))


def _read_model_index(directory: Path, role: str) -> dict:
    index_path = directory / "model_index.json"
    if not index_path.is_file():
        raise _fail(f"{role} {directory} has no model_index.json: pass the diffusers-layout model directory "
                    "(the folder holding model_index.json, unet/, vae/, text_encoder/)")
    try:
        return json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _fail(f"cannot read {index_path} ({error.__class__.__name__}): "
                    "re-export the model with save_pretrained") from None


def _check_component_weights(directory: Path, index: dict) -> None:
    """Every weight-bearing component must have safetensors weights; pickles are never loaded."""
    for component in WEIGHT_COMPONENTS:
        entry = index.get(component)
        if not entry or entry[0] is None:
            continue
        folder = directory / component
        if not folder.is_dir():
            raise _fail(f"model {directory} lists {component} in model_index.json but has no {component}/ folder: "
                        "copy the complete model directory")
        if not any(folder.glob("*.safetensors")):
            pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
            found = f"only pickle weights ({', '.join(sorted(pickles))})" if pickles else "no weights"
            raise _fail(f"{folder} has {found}; restyle loads .safetensors only: convert the model "
                        "(load it once in a trusted environment and save_pretrained(..., safe_serialization=True))")


def _check_safetensors_file(path: Path, role: str) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise _fail(f"{role} {path} is a pickle checkpoint ({path.suffix}); restyle loads .safetensors only: "
                    "use the model's .safetensors release or convert it in a trusted environment")
    if path.suffix.lower() != ".safetensors":
        raise _fail(f"{role} {path} is neither a diffusers model directory nor a .safetensors checkpoint: "
                    "pass the folder holding model_index.json or a .safetensors file")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as handle:
            next(iter(handle.keys()), None)
    except Exception as error:  # noqa: BLE001 - safetensors raises several types for a damaged header
        raise _fail(f"{role} {path} is not a readable safetensors file ({error.__class__.__name__}: "
                    f"{str(error).splitlines()[0] if str(error) else 'unreadable'}): re-download or re-export it") from None


def is_sdxl(index: dict) -> bool:
    """Whether a ``model_index.json`` describes an SDXL pipeline."""
    return "XL" in str(index.get("_class_name", "")) or bool(index.get("text_encoder_2"))


def _check_family(index: dict, where: Path) -> None:
    name = str(index.get("_class_name", ""))
    if not name.startswith("StableDiffusion") or "unet" not in index:
        raise _fail(f"model {where} is a {name or 'unknown'} pipeline; restyle needs a Stable Diffusion 1.x/2.x or "
                    "SDXL model (a UNet + VAE + CLIP text encoder)")


def pipeline_class(sdxl: bool, controlnet: bool):
    """The diffusers img2img pipeline class for the model family and ControlNet use."""
    import diffusers

    names = {
        (False, False): "StableDiffusionImg2ImgPipeline",
        (False, True): "StableDiffusionControlNetImg2ImgPipeline",
        (True, False): "StableDiffusionXLImg2ImgPipeline",
        (True, True): "StableDiffusionXLControlNetImg2ImgPipeline",
    }
    return getattr(diffusers, names[(sdxl, controlnet)])


def set_scheduler(pipeline, scheduler: str) -> None:
    """Swap ``pipeline``'s scheduler for the named one, keeping the model's noise schedule."""
    import diffusers

    try:
        class_name = SCHEDULERS[scheduler]
    except KeyError:
        raise ValueError(f"unknown scheduler {scheduler!r}; use one of {sorted(SCHEDULERS)}") from None
    if type(pipeline.scheduler).__name__ != class_name:
        pipeline.scheduler = getattr(diffusers, class_name).from_config(pipeline.scheduler.config)


def default_device_and_dtype(device=None, dtype=None):
    """CUDA in fp16 when available, else the CPU in fp32 (fp16 on CPU is slow and lossy)."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    elif isinstance(dtype, str):
        dtype = {"fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16,
                 "bfloat16": torch.bfloat16, "fp32": torch.float32, "float32": torch.float32}[dtype]
    return device, dtype


def _check_controlnet_files(controlnet_path) -> Path:
    """The ControlNet directory, checked to hold a config and safetensors weights (none read)."""
    path = Path(controlnet_path).expanduser()
    if not path.exists():
        raise _fail(f"ControlNet not found: {path}: pass the diffusers ControlNet directory "
                    "(config.json + diffusion_pytorch_model.safetensors)")
    if not path.is_dir():
        _check_safetensors_file(path, "ControlNet")
        raise _fail(f"ControlNet {path} is a single file; pass its diffusers directory instead "
                    "(config.json + diffusion_pytorch_model.safetensors)")
    if not (path / "config.json").is_file():
        raise _fail(f"ControlNet {path} has no config.json: pass the diffusers ControlNet directory")
    if not any(path.glob("*.safetensors")):
        raise _fail(f"ControlNet {path} has no .safetensors weights; restyle loads .safetensors only: convert it")
    return path


def _load_controlnet(controlnet_path, dtype):
    from diffusers import ControlNetModel

    path = _check_controlnet_files(controlnet_path)
    try:
        return ControlNetModel.from_pretrained(path, dtype=dtype, local_files_only=True, use_safetensors=True)
    except Exception as error:  # noqa: BLE001 - any loader failure becomes the one-line error
        raise _fail(f"cannot load ControlNet {path}: {error.__class__.__name__}: "
                    f"{str(error).splitlines()[0] if str(error) else ''}") from None


def check_model_files(model_path, *, controlnet_path=None, config=None) -> tuple[dict, Path | None]:
    """Check a model's files without loading any weights (cheap: for checks before a run).

    Returns
    -------
    index : dict
        The pipeline's ``model_index.json`` (of ``config`` for a single-file checkpoint).
    config_dir : Path or None
        The config directory of a single-file checkpoint, None for a diffusers directory.

    Raises
    ------
    DiffusionModelError
        One line naming the path and the fix.
    """
    path = Path(model_path).expanduser()
    if not path.exists():
        raise _fail(f"diffusion model not found: {path}: pass a diffusers model directory (with model_index.json) "
                    "or a .safetensors checkpoint")
    if path.is_dir():
        index = _read_model_index(path, "model")
        _check_family(index, path)
        _check_component_weights(path, index)
        config_dir = None
    else:
        _check_safetensors_file(path, "checkpoint")
        if config is None:
            raise _fail(f"single-file checkpoint {path} needs config=<local diffusers directory of the same "
                        "architecture> (model_index.json, */config.json, tokenizer/) to load offline")
        config_dir = Path(config).expanduser()
        if not config_dir.is_dir():
            raise _fail(f"config directory not found: {config_dir}: pass a local diffusers model directory "
                        "with model_index.json and the component configs")
        index = _read_model_index(config_dir, "config directory")
        _check_family(index, config_dir)
    if controlnet_path is not None:
        _check_controlnet_files(controlnet_path)
    return index, config_dir


def load_pipeline(model_path, *, controlnet_path=None, scheduler: str | None = None, device=None, dtype=None,
                  config=None):
    """Load a Stable Diffusion 1.x/2.x or SDXL img2img pipeline from local files.

    Parameters
    ----------
    model_path : str or path-like
        A diffusers model directory (holding ``model_index.json``) or a single
        ``.safetensors`` checkpoint.
    controlnet_path : str or path-like, optional
        A diffusers ControlNet directory; the matching ControlNet img2img pipeline is built.
    scheduler : str, optional
        One of :data:`SCHEDULERS`; ``None`` keeps the model's own.
    device : str or torch.device, optional
        Defaults to CUDA when available, else the CPU.
    dtype : torch.dtype or str, optional
        Defaults to fp16 on CUDA and fp32 on the CPU.
    config : str or path-like, optional
        For a single-file checkpoint only: a local diffusers directory of the same
        architecture supplying the component configs and tokenizers (no weights needed).

    Returns
    -------
    pipeline : diffusers.DiffusionPipeline
        On ``device``, progress bars off, memory-efficient attention on where available
        (PyTorch's SDPA always; xFormers when it is importable on CUDA).

    Raises
    ------
    DiffusionModelError
        For a missing, incomplete, pickled or unreadable model, with a one-line message.
    """
    from ..torch_runtime import fix_cublas_workspace

    force_offline()
    fix_cublas_workspace()  # before CUDA starts
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {scheduler!r}; use one of {sorted(SCHEDULERS)}")
    device, dtype = default_device_and_dtype(device, dtype)
    path = Path(model_path).expanduser()
    index, config_dir = check_model_files(path, config=config)

    sdxl = is_sdxl(index)
    components = {}
    if controlnet_path is not None:
        components["controlnet"] = _load_controlnet(controlnet_path, dtype)
    if not sdxl:
        # SD 1.x ships a safety checker (and its CLIP image processor); restyle never runs it.
        components.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    cls = pipeline_class(sdxl, controlnet_path is not None)
    try:
        if config_dir is None:
            pipeline = cls.from_pretrained(path, dtype=dtype, local_files_only=True, use_safetensors=True,
                                           trust_remote_code=False, **components)
        else:
            pipeline = cls.from_single_file(str(path), config=str(config_dir), dtype=dtype,
                                            local_files_only=True, **components)
    except DiffusionModelError:
        raise
    except Exception as error:  # noqa: BLE001 - any loader failure becomes the one-line error
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise _fail(f"cannot load diffusion model {path}: {error.__class__.__name__}: {first_line}") from None

    controlnet = components.get("controlnet")
    if controlnet is not None:
        # A ControlNet is trained against one base architecture; a mismatch fails deep in the
        # first denoising step with a shape error, so say it here.
        for key in ("cross_attention_dim", "block_out_channels", "addition_embed_type"):
            theirs, ours = controlnet.config.get(key), pipeline.unet.config.get(key)
            if key in controlnet.config and theirs != ours and not (
                    isinstance(theirs, (list, tuple)) and list(theirs) == list(ours or [])):
                raise _fail(f"ControlNet {Path(controlnet_path).expanduser()} does not fit model {path} "
                            f"({key} {theirs} vs {ours}): use a ControlNet trained for this base model family")
    if scheduler is not None:
        set_scheduler(pipeline, scheduler)
    pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    if device.type == "cuda" and importlib.util.find_spec("xformers") is not None:
        try:
            pipeline.enable_xformers_memory_efficient_attention()
        except Exception:  # noqa: BLE001, S110 - optional speed-up; a broken install is fine
            pass  # PyTorch's SDPA (the default processor) is already memory-efficient
    return pipeline
