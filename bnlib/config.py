"""Typed configs for one training run.

Three small dataclasses, one per concern (model, data, training), whose defaults are the
paper's Appendix B. Their field names are the CLI flags (``--bn-init`` for ``bn_init``), the
keys of a run's ``config.json`` and the names a chapter's ``parameters`` cell uses.

Fields whose metadata says ``hashed=False`` say *where* or *how visibly* a run executes, not
*what* it computes, so they do not change the run's address in the results store.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import Any

from .architectures import canonical_name
from .errors import ConfigError

__all__ = ["ConfigError", "DataConfig", "ModelConfig", "RunConfig", "TrainConfig", "all_fields"]


def _field(default: Any, help: str, hashed: bool = True) -> Any:
    return field(default=default, metadata={"help": help, "hashed": hashed})


def _normalise(config: Any) -> None:
    """Give each number its field's type: a run's address hashes the values as JSON, so
    ``epochs=2.0`` (a YAML or papermill float) or a numpy integer read back from a results
    table would otherwise address another run than ``epochs=2``, and train it again."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            continue
        if f.type == "float":
            object.__setattr__(config, f.name, float(value))
        elif f.type == "int" and float(value).is_integer():
            object.__setattr__(config, f.name, int(value))


@dataclass(frozen=True)
class ModelConfig:
    model: str = _field("resnet-14", "network: resnet-N (N = 6D+2) or wrn-N-W (Table 1)")
    bn_init: str = _field(
        "uniform", "BatchNorm init: uniform (gamma~U[0,1], beta=0), ones, symmetric, ones-beta-one"
    )
    feature_init: str = _field(
        "he-normal", "init of convolutions and output layer: he-normal, he-uniform, binary, orthogonal"
    )
    normalize: bool = _field(True, "BatchNorm normalises its input (false: only gamma*x+beta, Appendix E)")

    def __post_init__(self) -> None:
        _normalise(self)
        # The one place a network's name is normalised: wrn-14-1 and ResNet-14 name resnet-14.
        object.__setattr__(self, "model", canonical_name(self.model))


@dataclass(frozen=True)
class DataConfig:
    data: str = _field(
        "cifar10",
        "cifar10 (torchvision, downloaded when missing), synthetic, or a path to a torchvision "
        "CIFAR-10 folder, an image folder (train/<class>/*, test/<class>/*) or its .tar.gz",
    )
    augment: bool = _field(True, "random crop (4-pixel zero padding) and horizontal flip")

    __post_init__ = _normalise


@dataclass(frozen=True)
class TrainConfig:
    trainable: str = _field(
        "all",
        "parts to train, comma separated: bn, gamma, beta, shortcut, output, conv, all, none; "
        "a leading '-' removes a part (all,-bn: everything but gamma and beta)",
    )
    epochs: int = _field(160, "training epochs")
    seed: int = _field(0, "replicate seed: initialisation, data order and augmentation")
    batch_size: int = _field(128, "images per SGD step")
    lr: float = _field(0.1, "initial learning rate")
    momentum: float = _field(0.9, "SGD momentum")
    weight_decay: float = _field(1e-4, "L2 weight decay on every trainable parameter, gamma and beta included")
    lr_drops: str = _field("0.5,0.75", "fractions of training after which lr is divided by 10 (80 and 120 of 160)")
    precision: str = _field("fp32", "fp32, or bf16 (autocast; BatchNorm stays fp32): changes numerics")
    device: str = _field("auto", "auto, cpu, cuda, cuda:N", hashed=False)
    # The layout changes the order of floating-point sums in convolutions and BatchNorm, so the
    # numbers (gamma moves by ~5e-3 over a few epochs): it is part of the address, entering it
    # only when false (every stored run used the default), so a run never resumes in another.
    channels_last: bool = _field(True, "NHWC memory layout (faster on CPU and GPU; false is another run: "
                                       "it rounds differently)")
    compile: str = _field("none", "torch.compile: none, default, reduce-overhead (CUDA graphs)", hashed=False)

    __post_init__ = _normalise


CONFIG_TYPES = (ModelConfig, DataConfig, TrainConfig)


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_flat(cls, **values: Any) -> "RunConfig":
        """Build from flat field names (``model=..., trainable=..., epochs=...``)."""
        parts = {}
        for key, kind in zip(("model", "data", "train"), CONFIG_TYPES):
            names = {f.name for f in dataclasses.fields(kind)}
            parts[key] = kind(**{k: values.pop(k) for k in list(values) if k in names})
        if values:
            raise ConfigError(f"unknown config field(s): {', '.join(sorted(values))}")
        return cls(**parts)

    def flat(self) -> dict[str, Any]:
        """All fields in one flat dict, the form of ``config.json``."""
        out: dict[str, Any] = {}
        for part in (self.model, self.data, self.train):
            out.update(dataclasses.asdict(part))
        return out

    def hashed_fields(self) -> dict[str, Any]:
        return {
            f.name: getattr(part, f.name)
            for part in (self.model, self.data, self.train)
            for f in dataclasses.fields(part)
            if f.metadata.get("hashed", True)
        }

    def replace(self, **values: Any) -> "RunConfig":
        return RunConfig.from_flat(**{**self.flat(), **values})


def all_fields() -> list[dataclasses.Field]:
    return [f for kind in CONFIG_TYPES for f in dataclasses.fields(kind)]
