"""The shape every preprocessing step shares, the step registry, and the input checks.

A step is a small callable on a `Slice` (the TorchIO/MONAI transform shape with sklearn's estimator
rules): constructor arguments are stored under their own names and nothing else happens in `__init__`;
whatever a step learns from data is set in `fit`, ends in `_` and is returned by `fitted_state()`;
`__call__` checks fitted-ness, reads no globals, writes nothing to `self` and returns a NEW `Slice`.
The maths lives once in plain numpy/OpenCV functions in each step's module; the step only delegates.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import numpy as np

from ctnodule.data.slice import Slice
from ctnodule.errors import ConfigError, DataError
from ctnodule.registry import Registry

#: Preprocessing steps by name: `STEPS.create("window", level=-600, width=1500)`.
STEPS: Registry[Step] = Registry("preprocessing step", tuple(f"ctnodule.preprocess.{m}" for m in (
    "clahe", "gamma", "lungmask", "noise", "resize", "window")))

#: meta key of the lung mask (uint8, same (H, W) as the slice) set by `lung_mask` and carried along.
LUNG_MASK = "lung_mask"


class NotFittedError(ConfigError):
    """A step that learns from data was applied before `fit`."""


class Step:
    """Base class. Subclasses set `name`, implement `apply(slice) -> Slice` and, if they learn from
    data, `fit(slices) -> self` and `fitted_state()` / `set_fitted_state()`."""

    name: str = ""
    #: True when `fit` must run before `apply` (set by steps that learn from data).
    needs_fit: bool = False

    # -- parameters (sklearn's get_params: read back from the constructor signature) --------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self"]

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, as given (never data-derived values)."""
        return {name: _plain(getattr(self, name)) for name in self._param_names()}

    # -- fitted state -------------------------------------------------------------------------------
    def fit(self, slices: Iterable[Slice]) -> Step:
        """Learn from training slices (already passed through the steps before this one)."""
        return self

    def fitted_state(self) -> dict[str, Any]:
        """Everything `fit` learned, as plain YAML-able values (empty for stateless steps)."""
        return {}

    def set_fitted_state(self, state: dict[str, Any]) -> Step:
        """Restore what `fit` learned (from a saved pipeline)."""
        if state:
            raise ConfigError(f"step {self.name!r} learns nothing from data but was given state {state}")
        return self

    def is_fitted(self) -> bool:
        return not self.needs_fit or bool(self.fitted_state())

    def check_is_fitted(self) -> None:
        if not self.is_fitted():
            raise NotFittedError(
                f"step {self.name!r} learns from the training data: call Pipeline.fit(train_dataset) "
                "(or load a saved pipeline.yaml) before transforming"
            )

    # -- application --------------------------------------------------------------------------------
    def __call__(self, s: Slice) -> Slice:
        self.check_is_fitted()
        check_slice(s, self.name)
        return self.apply(s)

    def apply(self, s: Slice) -> Slice:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def check_slice(s: Slice, where: str) -> None:
    """Refuse input no step can handle honestly: non-numeric dtype, wrong rank, NaN/inf, bad spacing."""
    a = s.array
    sid = s.meta.get("sample_id", "?")
    if not isinstance(a, np.ndarray):
        raise DataError(f"{where}: sample {sid!r}: array is a {type(a).__name__}, expected a numpy array")
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise DataError(f"{where}: sample {sid!r}: dtype {a.dtype} is not a numeric image; expected int16 HU "
                        "or float32")
    if a.ndim not in (2, 3) or min(a.shape) < 2:
        raise DataError(f"{where}: sample {sid!r}: shape {a.shape}; expected (H, W) or a (k, H, W) stack "
                        "with H, W >= 2")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise DataError(f"{where}: sample {sid!r}: array contains NaN or infinite values; fix the source "
                        "file or drop the sample")
    if len(s.spacing) != 2 or not all(np.isfinite(x) and x > 0 for x in s.spacing):
        raise DataError(f"{where}: sample {sid!r}: spacing {s.spacing} must be two positive mm values")
    if s.mask is not None and s.mask.shape != a.shape[-2:]:
        raise DataError(f"{where}: sample {sid!r}: mask shape {s.mask.shape} does not match image "
                        f"{a.shape[-2:]}")


def per_channel(fn, array: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
    """Apply a 2D function to an (H, W) array or to each slice of a (k, H, W) stack."""
    if array.ndim == 2:
        return fn(array, *args, **kwargs)
    return np.stack([fn(a, *args, **kwargs) for a in array])


def centre_plane(array: np.ndarray) -> np.ndarray:
    """The slice a decision is made on: the array itself, or the middle of a 2.5D stack."""
    return array if array.ndim == 2 else array[array.shape[0] // 2]


def create_step(name: str, params: dict[str, Any] | None = None) -> Step:
    """Build a registered step; a misspelt parameter is a `ConfigError` naming the accepted ones."""
    factory = STEPS.get(name)
    params = dict(params or {})
    allowed = factory._param_names() if isinstance(factory, type) else list(params)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"step {name!r}: unknown parameter(s) {unknown}; accepted: {allowed}")
    return factory(**params)


def _plain(value: Any) -> Any:
    """YAML-friendly copy: tuples -> lists, numpy scalars -> Python."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
