"""Which device trains, in which precision, with which seeds; and how many GPUs there are to deal members to."""

import os
import pathlib
import re
import subprocess

import keras


def cpu_has_bf16() -> bool:
    """AMX (Intel) or AVX512-BF16 (AMD Zen 4): bf16 instructions, so mixed_bfloat16 beats float32 there (the
    research log has the figures)."""
    try:
        flags = pathlib.Path("/proc/cpuinfo").read_text()
        return "amx_bf16" in flags or "avx512_bf16" in flags
    except OSError:
        return False


def gpu_count() -> int:
    """The GPUs Keras's backend sees. Under JAX this starts the backend, which takes most of each GPU's memory:
    a process that hands GPUs to workers counts them with visible_gpus instead."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        return len(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax
        return sum(device.platform == "gpu" for device in jax.devices())
    if backend == "torch":
        import torch
        return torch.cuda.device_count()
    return 0


def visible_gpus() -> list:
    """The NVIDIA GPUs this process may use, as CUDA_VISIBLE_DEVICES numbers them, found without starting a
    backend (nvidia-smi); none where there is no driver."""
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = re.findall(r"^GPU (\d+):", listed, flags=re.MULTILINE)  # its own numbers, whatever else it prints
    chosen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is None:
        return found
    return [item.strip() for item in chosen.split(",") if item.strip() in found]


def accelerator() -> str:
    """'gpu' or 'cpu' for the device Keras will train on. A GPU that nvidia-smi lists but the backend cannot use
    (CUDA failed to load) is an error: a GPU recipe trained on the CPU instead is cut short by its budget and
    writes a near-chance submission."""
    if gpu_count():
        return "gpu"
    listed = visible_gpus()
    if listed:
        raise ValueError(f"nvidia-smi lists GPU {', '.join(listed)}, but {keras.backend.backend()} found none (CUDA "
                         "did not load); fix the GPU set-up, or set CUDA_VISIBLE_DEVICES= to train on the CPU")
    return "cpu"


def found() -> str:
    """The GPUs this run may use, in words, for the first lines of its log."""
    gpus = visible_gpus()
    return f"GPUs: {', '.join(gpus)} (nvidia-smi -L)" if gpus else "GPUs: none (nvidia-smi lists none): the CPU trains"


def precision(config, device: str | None = None) -> str:
    """The dtype policy for `precision=auto` on `device` (default: the one Keras will train on): half precision
    wherever the hardware gains from it. Kaggle's T4s have float16 tensor cores and no bfloat16; each member
    trains on one GPU, so float16's loss scaling sees all of a step's gradients."""
    if config.precision != "auto":
        return config.precision
    if (device or accelerator()) == "gpu":
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"


def set_seeds(seed: int, deterministic: bool = True) -> None:
    keras.utils.set_random_seed(seed)  # python, numpy and the backend
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()  # same seed, same submission; it also turns XLA off
