"""Saving and loading estimators without pickle: tensors in safetensors, everything else in
JSON, a format version checked on load.

A saved estimator is a directory of two files:

- ``estimator.json``: the format and its version, the estimator's class and parameters, and
  its fitted state as a tree of plain values, in which each tensor or numeric array is a
  reference into the tensor file, each dataclass of titans_seq names its class, and each
  LightningModule names its class, its hyper-parameters and what its checkpoint hook keeps;
- ``tensors.safetensors``: every tensor and array, by the name the tree gives it.

Loading reads JSON and safetensors only: no code in a file runs. A class named in the file is
looked up only in titans_seq's and datamodules' own modules and must be a dataclass (or a
LightningModule for a module), so a hostile file can at most build our own objects from plain
values, whose constructors check them. A file written by another format version is refused
with both versions named.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import re
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "titans_seq estimator"
FORMAT_VERSION = 1
STATE_FILE, TENSOR_FILE = "estimator.json", "tensors.safetensors"
MAX_STATE_BYTES = 256 * 2 ** 20  # a larger estimator.json is refused before it is parsed
_PACKAGES = ("titans_seq", "datamodules")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_DATETIME = "datetime64[ns]"


class _Encoder:
    """Turns a value into a JSON tree, collecting its tensors."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}

    def tensor(self, tensor: torch.Tensor) -> str:
        name = f"t{len(self.tensors)}"
        self.tensors[name] = tensor.detach().cpu().contiguous().clone()
        return name

    def __call__(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            value = float(value)
            return value if math.isfinite(value) else {"float": repr(value)}
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, torch.Tensor):
            return {"tensor": self.tensor(value)}
        if isinstance(value, np.ndarray):
            return self.array(value, where)
        if isinstance(value, (list, tuple)):
            items = [self(item, f"{where}[{i}]") for i, item in enumerate(value)]
            return items if isinstance(value, list) else {"tuple": items}
        if isinstance(value, dict):
            if all(isinstance(key, str) for key in value):
                return {"dict": {key: self(item, f"{where}.{key}")
                                 for key, item in value.items()}}
            return {"items": [[self(key, where), self(item, f"{where}[{key!r}]")]
                              for key, item in value.items()]}
        if isinstance(value, pd.offsets.BaseOffset):
            return {"offset": value.freqstr}
        if isinstance(value, pl.LightningModule):
            return self.module(value, where)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {"dataclass": _class_name(value, where),
                    "fields": {field.name: self(getattr(value, field.name),
                                                f"{where}.{field.name}")
                               for field in dataclasses.fields(value)}}
        raise TypeError(f"{where} is a {type(value).__name__}, which save cannot write "
                        "without pickle; use plain values (an int seed rather than a "
                        "RandomState, say)")

    def array(self, array: np.ndarray, where: str) -> Any:
        if array.dtype.kind in "biuf":
            return {"array": self.tensor(torch.from_numpy(array.copy()))}
        if array.dtype == np.dtype(_DATETIME):
            return {"array": self.tensor(torch.from_numpy(array.view(np.int64).copy())),
                    "dtype": _DATETIME}
        if array.dtype.kind in "UO" and array.ndim == 1:
            items = [self(item, f"{where}[{i}]") for i, item in enumerate(array.tolist())]
            return {"objects" if array.dtype.kind == "O" else "strings": items}
        raise TypeError(f"{where} is an array of {array.dtype}, which save cannot write")

    def module(self, module: pl.LightningModule, where: str) -> Any:
        extra: dict[str, Any] = {}
        module.on_save_checkpoint(extra)  # what the module keeps besides its weights
        state = {key: {"tensor": self.tensor(tensor)}
                 for key, tensor in module.state_dict().items()}
        return {"module": _class_name(module, where),
                "hparams": self(dict(module.hparams), f"{where}.hparams"),
                "extra": self(extra, f"{where}.extra"), "state": {"dict": state}}


def _class_name(value: Any, where: str) -> str:
    cls = type(value)
    if cls.__module__.split(".")[0] not in _PACKAGES:
        raise TypeError(f"{where} is a {cls.__module__}.{cls.__qualname__}, which save "
                        "cannot write")
    return f"{cls.__module__}:{cls.__qualname__}"


class _Decoder:
    """Turns a JSON tree back into values; any surprise raises ``ValueError``."""

    def __init__(self, tensors: dict[str, torch.Tensor], path: Path) -> None:
        self.tensors, self.path = tensors, path

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{self.path} is not a titans_seq estimator that can be loaded "
                          f"({what})")

    def tensor(self, name: Any) -> torch.Tensor:
        if not isinstance(name, str) or name not in self.tensors:
            raise self.fail(f"it refers to a tensor {name!r} that {TENSOR_FILE} lacks")
        return self.tensors[name]

    def __call__(self, tree: Any) -> Any:
        if tree is None or isinstance(tree, (bool, int, float, str)):
            return tree
        if isinstance(tree, list):
            return [self(item) for item in tree]
        if not isinstance(tree, dict) or len(tree) not in (1, 2, 3, 4):
            raise self.fail(f"an entry of an unknown kind: {str(tree)[:80]}")
        kind = next(iter(tree))
        body = tree[kind]
        if kind == "float" and body in ("nan", "inf", "-inf"):
            return float(body)
        if kind == "tensor":
            return self.tensor(body)
        if kind == "array":
            array = self.tensor(body).numpy().copy()
            return array.view(_DATETIME) if tree.get("dtype") == _DATETIME else array
        if kind in ("strings", "objects") and isinstance(body, list):
            items = [self(item) for item in body]
            return np.array(items, dtype=object if kind == "objects" else None)
        if kind == "tuple" and isinstance(body, list):
            return tuple(self(item) for item in body)
        if kind == "dict" and isinstance(body, dict):
            return {key: self(item) for key, item in body.items()}
        if kind == "items" and isinstance(body, list):
            return {self(pair[0]): self(pair[1]) for pair in body}
        if kind == "offset" and isinstance(body, str):
            return pd.tseries.frequencies.to_offset(body)
        if kind == "dataclass" and isinstance(tree.get("fields"), dict):
            cls = self.cls(body, dataclass=True)
            return cls(**{key: self(item) for key, item in tree["fields"].items()})
        if kind == "module":
            return self.module(tree)
        raise self.fail(f"an entry of an unknown kind {kind!r}")

    def cls(self, name: Any, dataclass: bool = False) -> type:
        """A class of titans_seq or datamodules by ``module:qualname``."""
        if not isinstance(name, str) or name.count(":") != 1:
            raise self.fail(f"a malformed class name {str(name)[:80]!r}")
        module_name, qualname = name.split(":")
        if not (_NAME.match(module_name) and _NAME.match(qualname)) or \
                module_name.split(".")[0] not in _PACKAGES:
            raise self.fail(f"a class {name[:80]!r} outside titans_seq")
        try:
            value: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                value = getattr(value, part)
        except (ImportError, AttributeError):
            raise self.fail(f"a class {name!r} that this titans_seq does not have") from None
        expected = dataclasses.is_dataclass(value) if dataclass else \
            isinstance(value, type) and issubclass(value, pl.LightningModule)
        if not isinstance(value, type) or not expected:
            raise self.fail(f"{name!r}, which is not a "
                            f"{'dataclass' if dataclass else 'LightningModule'}")
        return value

    def module(self, tree: dict) -> pl.LightningModule:
        cls = self.cls(tree.get("module"))
        hparams, extra, state = (self(tree.get(key)) for key in ("hparams", "extra", "state"))
        if not all(isinstance(part, dict) for part in (hparams, extra, state)):
            raise self.fail("a module without its hyper-parameters, extra state or weights")
        module = cls(**hparams)
        module.on_load_checkpoint(extra)
        module.load_state_dict(state)
        return module.eval()


def save_estimator(estimator: Any, path: str | Path) -> Path:
    """Write ``estimator`` (fitted or not) to the directory ``path`` (created; files of an
    earlier save there are replaced). Returns the directory."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file; save writes a directory (give a new path)")
    encode = _Encoder()
    params = encode(estimator.get_params(deep=False), "params")
    fitted = {name: value for name, value in vars(estimator).items()
              if name.endswith("_") and not name.startswith("_")}
    tree = {"format": FORMAT, "version": FORMAT_VERSION, "library": _version(),
            "estimator": type(estimator).__name__, "params": params,
            "fitted": encode(fitted, "fitted") if fitted else None}
    path.mkdir(parents=True, exist_ok=True)
    save_file(encode.tensors, str(path / TENSOR_FILE))
    (path / STATE_FILE).write_text(json.dumps(tree), encoding="utf-8")
    return path


def load_estimator(cls: type, path: str | Path) -> Any:
    """The estimator of class ``cls`` saved at ``path`` (see :func:`save_estimator`)."""
    path = Path(path)
    state_file, tensor_file = path / STATE_FILE, path / TENSOR_FILE
    if not state_file.is_file() or not tensor_file.is_file():
        raise ValueError(f"{path} is not a saved estimator: it needs {STATE_FILE} and "
                         f"{TENSOR_FILE} (written by save)")
    if state_file.stat().st_size > MAX_STATE_BYTES:
        raise ValueError(f"{state_file} is larger than {MAX_STATE_BYTES >> 20} MiB; "
                         "save never writes one so large")
    try:
        tree = json.loads(state_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"{state_file} is not the JSON save writes ({error})") from None
    if not isinstance(tree, dict) or tree.get("format") != FORMAT:
        raise ValueError(f"{state_file} is not a titans_seq estimator file")
    if tree.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path} was saved in format version {tree.get('version')!r} "
                         f"(titans_seq {tree.get('library')}); this titans_seq "
                         f"({_version()}) reads version {FORMAT_VERSION}: load it with "
                         f"the titans_seq that saved it, or refit")
    if tree.get("estimator") != cls.__name__:
        raise ValueError(f"{path} holds a {tree.get('estimator')}, not a {cls.__name__}; "
                         f"load it with {tree.get('estimator')}.load")
    try:
        tensors = load_file(str(tensor_file))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{tensor_file} is not a safetensors file that can be loaded "
                         f"({str(error).splitlines()[0][:200]})") from None
    decode = _Decoder(tensors, path)
    try:
        params = decode(tree.get("params"))
        if not isinstance(params, dict):
            raise decode.fail("no parameters")
        estimator = cls(**params)
        if tree.get("fitted") is not None:
            fitted = decode(tree["fitted"])
            if not isinstance(fitted, dict) or not all(
                    isinstance(name, str) and name.endswith("_") for name in fitted):
                raise decode.fail("its fitted state is not a set of fitted attributes")
            estimator.__dict__.update(fitted)
    except ValueError as error:
        if str(path) in str(error):  # already says which file
            raise
        raise decode.fail(_one_line(error)) from None
    except (TypeError, RuntimeError, KeyError, AttributeError, RecursionError) as error:
        raise decode.fail(_one_line(error)) from None
    return estimator


def _one_line(error: BaseException) -> str:
    message = str(error).splitlines()[0][:200] if str(error) else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("titans-seq")
    except PackageNotFoundError:
        return "unknown"
