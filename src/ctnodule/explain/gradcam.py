"""Class activation maps through the maintained `grad-cam` package (pytorch-grad-cam), made safe to use.

`CamExplainer` is one context-managed object: on entry it remembers every module's train/eval flag and
every parameter's `.grad` and `requires_grad` (weights are frozen while explaining: a CAM needs gradients
of activations only, and skipping the weight gradients makes it much cheaper); on exit it removes the
package's hooks and puts all of that back, and it never swallows an exception (the package's own `__exit__` silently eats `IndexError`s, and its constructor
switches the caller's model to eval for good — both are corrected here). Methods are chosen by name
from a registry (`gradcam`, `gradcam++`, `scorecam`, `eigencam`, ...).

The target layer is found automatically (`find_target_layer`): the last convolution whose output still
has a spatial extent, followed through the modules that keep its shape (BatchNorm, activation, the end of
a residual block), so the map shows the activated features the classifier pools — `layer4` for ResNets,
`bn2` (after `conv_head`) for EfficientNet/MobileNetV2, `features.35` for VGG19 — whatever head or
wrapper sits around the backbone. A layer name overrides it (`--layer`).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ctnodule.errors import ConfigError
from ctnodule.registry import Registry

CAM_METHODS: Registry = Registry("CAM method")


def _register_methods() -> None:
    import pytorch_grad_cam as pgc

    for name, cls in (
        ("gradcam", pgc.GradCAM),
        ("gradcam++", pgc.GradCAMPlusPlus),
        ("hirescam", pgc.HiResCAM),
        ("xgradcam", pgc.XGradCAM),
        ("layercam", pgc.LayerCAM),
        ("eigencam", pgc.EigenCAM),
        ("eigengradcam", pgc.EigenGradCAM),
        ("scorecam", pgc.ScoreCAM),  # one forward pass per channel: slow on a CPU
    ):
        CAM_METHODS.register(name)(cls)


_register_methods()


def available_methods() -> list[str]:
    return CAM_METHODS.available()


def find_target_layer(model: nn.Module, example: torch.Tensor | None = None, min_side: int = 1) -> str:
    """Name of the layer whose activations a CAM should weight (see the module docstring).

    `example` is an input batch of the size the model will see (default a 1x3x224x224 zero tensor; a
    model that binds per-batch size features needs the very batch it was prepared for);
    it is run once, without gradients, in eval mode, and the model's modes are restored afterwards.
    `min_side` > 1 asks for the last convolution whose map is at least that many cells a side (a
    64-px nodule crop through a stride-32 backbone leaves a 2x2 map: too coarse to localise anything).
    """
    if example is None:
        example = torch.zeros(1, 3, 224, 224)
    order: list[tuple[str, nn.Module, tuple[int, ...] | None]] = []
    handles = []
    for name, module in model.named_modules():
        if name == "":
            continue

        def hook(mod: nn.Module, _inp: object, out: object, name: str = name) -> None:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
            order.append((name, mod, shape))

        handles.append(module.register_forward_hook(hook))
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
        for m, flag in modes.items():
            m.training = flag

    def spatial(shape: tuple[int, ...] | None) -> bool:
        return (shape is not None and len(shape) == 4 and shape[-1] * shape[-2] > 1
                and min(shape[-2:]) >= min_side)

    convs = [i for i, (_, mod, shape) in enumerate(order) if isinstance(mod, nn.Conv2d) and spatial(shape)]
    if not convs:
        raise ConfigError(
            f"{type(model).__name__}: found no convolutional layer with a spatial output for an input of "
            f"shape {tuple(example.shape)}{f' and a map of >= {min_side} cells a side' if min_side > 1 else ''}; "
            "pass the layer to explain by name (--layer NAME)"
        )
    best = convs[-1]
    shape = order[best][2]
    for j in range(best + 1, len(order)):
        if order[j][2] != shape:
            break
        best = j
    if min_side > 1:  # a finer map: prefer a whole stage/block (a child of a Sequential) to a layer inside one
        modules = dict(model.named_modules())
        whole = [i for i, (name, _, s) in enumerate(order) if spatial(s) and convs[0] <= i
                 and isinstance(modules.get(name.rpartition(".")[0]), (nn.Sequential, nn.ModuleList))]
        if whole:
            return order[whole[-1]][0]
    return order[best][0]


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called `name`; an unknown name lists the closest module names."""
    modules = dict(model.named_modules())
    if name in modules and name != "":
        return modules[name]
    close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ConfigError(f"--layer {name!r} is not a module of {type(model).__name__}.{hint}")


def resolve_target_layers(model: nn.Module, layer: str | None = None,
                          example: torch.Tensor | None = None) -> list[str]:
    """The layer(s) to explain: `layer` or the automatic choice; for a fold ensemble (a model with a
    `members` ModuleList) the same layer in every member, so the map averages over the folds."""
    members = getattr(model, "members", None)
    if isinstance(members, nn.ModuleList) and len(members) > 0:
        if layer is not None and layer in dict(model.named_modules()) and layer != "":
            return [layer]
        name = layer if layer is not None else find_target_layer(members[0], example)
        for m in members:
            get_layer(m, name)
        return [f"members.{i}.{name}" for i in range(len(members))]
    name = layer if layer is not None else find_target_layer(model, example)
    get_layer(model, name)
    return [name]


class CamExplainer:
    """`with CamExplainer(model, "gradcam") as cam: maps, probs, targets = cam(x)`.

    `x` is exactly the tensor the model sees (N, C, H, W), explained as one batch (a model that binds
    per-batch size features needs the batch it was prepared for, so the caller chunks); `maps` is
    (N, H, W) float32 in [0, 1] at the input's resolution (the package upsamples bilinearly and min-max
    scales each map); a map that is zero everywhere means the method found no positive evidence for that
    class. `target` is the class to explain: None = the predicted class, an int = that class for every
    sample, or one int per sample. `layers_` holds the layer name(s) used once the first batch ran and
    `grid_` the map's native resolution (a 2x2 map upsampled to 64 px cannot point at a nodule).
    """

    def __init__(self, model: nn.Module, method: str = "gradcam", layer: str | None = None):
        self.model = model
        self.method = method
        self.layer = layer

    def __enter__(self) -> CamExplainer:  # noqa: PYI034
        self._factory = CAM_METHODS.get(self.method)  # a bad name fails before anything is touched
        if self.method == "scorecam" and any(getattr(m, "n_extra", 0) for m in self.model.modules()):
            raise ConfigError("--method scorecam re-runs the model on batches of masked copies, which a "
                              "model that also takes the nodule size cannot do; use gradcam or gradcam++")
        self._modes = {m: m.training for m in self.model.modules()}
        self._grads = {p: (p.grad, p.requires_grad) for p in self.model.parameters()}
        for p in self._grads:  # a CAM needs gradients w.r.t. activations only: skip every weight gradient
            p.requires_grad_(False)
        self._cam = None
        self.layers_: list[str] | None = None
        self.grid_: tuple[int, int] | None = None  # the map's native cells (rows, cols) before upsampling
        if self.layer is not None:
            self.layers_ = resolve_target_layers(self.model, self.layer)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        try:
            if self._cam is not None:
                self._cam.activations_and_grads.release()
                self._cam.outputs = None
                self._cam = None
        finally:
            for m, flag in self._modes.items():
                m.training = flag
            for p, (grad, flag) in self._grads.items():
                p.requires_grad_(flag)
                p.grad = grad
        return False  # never swallow an error

    def __call__(self, x: torch.Tensor, target: int | Sequence[int] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Maps (N, H, W), class probabilities (N, K) and the explained class per sample (N,)."""
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        if not hasattr(self, "_modes"):
            raise RuntimeError("use CamExplainer inside a `with` block, so its hooks are always removed")
        if x.ndim != 4:
            raise ConfigError(f"expected an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
        n = x.shape[0]
        targets = None if target is None else np.broadcast_to(np.asarray(target, dtype=np.int64), (n,))
        if self._cam is None:
            if self.layers_ is None:
                self.layers_ = resolve_target_layers(self.model, None, x)
            layers = [get_layer(self.model, name) for name in self.layers_]
            self._cam = self._factory(model=self.model, target_layers=layers)
        # the input is the only leaf that requires grad, so gradients reach the layer (weights are frozen)
        xb = x.detach().clone().requires_grad_(True)
        wanted = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets]
        with torch.enable_grad():
            try:
                cams = self._cam(input_tensor=xb, targets=wanted)
            except IndexError as exc:
                if targets is None:
                    raise
                raise ConfigError(f"target class(es) {sorted(set(targets.tolist()))} out of range for this "
                                  f"model ({exc})") from exc
        acts = self._cam.activations_and_grads.activations
        if acts:
            self.grid_ = tuple(int(v) for v in acts[0].shape[-2:])
        logits = self._cam.outputs.detach()
        self._cam.outputs = None  # drop the graph between batches
        if logits.ndim != 2:
            raise ConfigError(f"the model returned shape {tuple(logits.shape)}; expected (N, classes)")
        probs = torch.softmax(logits.float(), dim=1).numpy()
        explained = probs.argmax(1) if targets is None else np.array(targets)
        return np.clip(cams.astype(np.float32), 0.0, 1.0), probs, explained.astype(np.int64)
