"""Which device trains, in which precision, with which seeds; and how many GPUs there are to deal members to."""

import os
import pathlib
import subprocess

import keras


def cpu_has_bf16() -> bool:
    """AMX (Intel) or AVX512-BF16 (AMD Zen 4): bf16 instructions, so mixed_bfloat16 beats float32 (here 2x on
    matmuls, about 1.4x on the tutorial's CNN)."""
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
    found = [str(index) for index, line in enumerate(listed.splitlines()) if line.startswith("GPU ")]
    chosen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is None:
        return found
    return [item.strip() for item in chosen.split(",") if item.strip() in found]


def accelerator() -> str:
    """'gpu' or 'cpu' for the device Keras will train on."""
    return "gpu" if gpu_count() else "cpu"


def precision(config, device: str) -> str:
    """The dtype policy for `precision=auto`: half precision wherever the hardware gains from it. Kaggle's T4s
    have float16 tensor cores and no bfloat16; each member trains on one GPU, so float16's loss scaling sees
    all of a step's gradients."""
    if config.precision != "auto":
        return config.precision
    if device == "gpu":
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"


def set_seeds(seed: int, deterministic: bool = True) -> None:
    keras.utils.set_random_seed(seed)  # python, numpy and the backend
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()  # same seed, same submission; it also turns XLA off
