"""Where an estimator trains and where its fitted model runs.

An estimator trains in one process on one device: the Lightning Trainer gets ``accelerator``
and ``devices`` (or the ``device=`` shortcut), and several devices (DDP, FSDP) are refused
with the command line named, which runs them. Its fitted model then forecasts or classifies
on ``device``: ``"auto"`` is the device it trained on when that device is available here
(a model fitted on a GPU and loaded on a CPU-only machine runs on the CPU), else the device
named.
"""

from __future__ import annotations

from typing import Any

import torch

from datamodules.checks import InvalidParameterError

MULTI_DEVICE = ("ddp", "fsdp", "deepspeed")


def check_device(device: Any) -> str:
    """``device`` as a str: ``"auto"`` or a torch device name (``"cpu"``, ``"cuda"``,
    ``"cuda:1"``, ``"mps"``)."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise InvalidParameterError(f"device must be 'auto' or a device name such as 'cpu' "
                                    f"or 'cuda:0', got {device!r}")
    if device == "auto":
        return device
    try:
        return str(torch.device(device))
    except (RuntimeError, ValueError):
        raise InvalidParameterError(f"device {device!r} is not a torch device; use 'auto', "
                                    "'cpu', 'cuda', 'cuda:1' or 'mps'") from None


def training_devices(device: str, accelerator: str, devices: Any,
                     trainer_kwargs: dict | None) -> tuple[str, Any, str]:
    """The Trainer's ``accelerator`` and ``devices``, and the torch device its one process
    trains on. ``device`` (checked) overrides ``accelerator``/``devices`` when not
    ``"auto"``; several devices are refused."""
    strategy = str((trainer_kwargs or {}).get("strategy", "auto")).lower()
    if any(name in strategy for name in MULTI_DEVICE):
        raise InvalidParameterError(
            f"strategy={strategy!r}: an estimator trains in one process on one device; train "
            "on several with the command line (titans-seq fit --trainer.strategy=ddp "
            "--trainer.devices=N), then TitansForecaster.from_checkpoint / "
            "TitansClassifier.from_checkpoint")
    if device != "auto":
        if accelerator not in ("auto", _kind(device)) or devices not in (1, "auto"):
            raise InvalidParameterError(f"device={device!r} sets where training runs; leave "
                                        f"accelerator ({accelerator!r}) and devices "
                                        f"({devices!r}) at their defaults")
        if not available(device):
            raise InvalidParameterError(f"device={device!r} is not available on this "
                                        "machine; use device='cpu' or 'auto'")
        index = torch.device(device).index
        return _kind(device), [index] if index is not None else 1, device
    kind = _resolved_kind(accelerator)
    if (devices if isinstance(devices, int) else _visible(kind)) > 1:
        raise InvalidParameterError(
            f"devices={devices!r} asks for several devices; an estimator trains on one "
            "(devices=1, or device='cuda:1'); for several use the command line "
            "(titans-seq fit --trainer.strategy=ddp --trainer.devices=N)")
    return accelerator, devices, "cuda:0" if kind == "cuda" else kind


def placed_device(fitted: str) -> torch.device:
    """Where a fitted model runs: the device ``fit`` chose (``fitted``: the one named by
    ``device``, else the one it trained on) when it is available here, else the CPU."""
    return torch.device(fitted if available(fitted) else "cpu")


def available(device: str) -> bool:
    """Whether the torch device ``device`` can be used here."""
    target = torch.device(device)
    if target.type == "cpu":
        return True
    if target.type == "cuda":
        return torch.cuda.is_available() and (target.index or 0) < torch.cuda.device_count()
    if target.type == "mps":
        return torch.backends.mps.is_available()
    return False


def _kind(device: str) -> str:
    return torch.device(device).type


def _resolved_kind(accelerator: str) -> str:
    """The device type Lightning's ``accelerator`` trains on (``"auto"``: a GPU when there
    is one)."""
    if accelerator in ("gpu", "cuda"):
        return "cuda"
    if accelerator == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    return "mps" if accelerator == "mps" else "cpu"


def _visible(kind: str) -> int:
    """Devices of ``kind`` that ``devices="auto"`` would take."""
    return torch.cuda.device_count() if kind == "cuda" else 1
