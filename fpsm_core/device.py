"""The one choice of a torch device, for inference, training, evaluation and the benches.

``auto`` means one thing everywhere: CUDA, then Apple MPS, then CPU. A named device (``cpu``,
``cuda``, ``cuda:1``, ``mps``) is checked against what this machine has, and a string torch does not
know (``tpu``) or a device that is absent ends as a :class:`DeviceError` naming the option the user
set (``--device`` on the command line, ``run.device`` in a training config), never as torch's
traceback.
"""

from __future__ import annotations

import torch

from fpsm_core.errors import FpsmError, shorten

DEVICE_CHOICES = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps"


class DeviceError(FpsmError):
    """A device that does not exist or is not available on this machine."""


def pick_device(
    name: str = "auto", *, local_rank: int | None = None, option: str = "--device"
) -> torch.device:
    """The torch device ``name`` stands for on this machine.

    Args:
        name: ``auto`` or a torch device string.
        local_rank: Under ``torchrun``, this process's GPU: ``auto`` and a bare ``cuda`` take
            ``cuda:LOCAL_RANK``. None (one process) leaves a bare ``cuda`` unindexed.
        option: How the user named the setting, for the message (``--device``, ``run.device``).

    Raises:
        DeviceError: ``name`` is no device, or names one this machine does not have.
    """
    text = str(name).strip()
    if text == "auto":
        if torch.cuda.is_available():
            return _cuda(None, local_rank)
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise DeviceError(
            f"{option} {shorten(text)} is not a device; expected {DEVICE_CHOICES}"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"{option} {text} was asked for but no CUDA device is available")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(
                f"{option} {text} was asked for but this machine has {count} CUDA device(s)"
            )
        return _cuda(device.index, local_rank)
    if device.type == "mps" and not _mps_available():
        raise DeviceError(f"{option} {text} was asked for but Apple MPS is not available")
    if device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"{option} {text} is not supported; expected {DEVICE_CHOICES}")
    return device


def _cuda(index: int | None, local_rank: int | None) -> torch.device:
    if index is None and local_rank is not None:
        index = local_rank
    return torch.device("cuda") if index is None else torch.device("cuda", index)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())
