"""scikit-learn's estimator contract (``get_params`` / ``set_params`` from the ``__init__`` keywords) without
importing scikit-learn.

Registered estimators are imported when a config is checked, and ``sklearn.base`` pulls in scipy.stats and
pandas: 1.6 CPU-seconds, most of what a config check cost. These classes only need the parameter protocol,
which ``sklearn.base.clone`` and the model card use by duck typing; the work in ``fit`` still uses
scikit-learn, imported there.
"""

from __future__ import annotations

import inspect
from typing import Any


class Estimator:
    """Parameters are the ``__init__`` keywords, stored as given under the same names (never ``*args``)."""

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(name for name, parameter in signature.parameters.items()
                      if name != "self" and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params = {}
        for name in self._param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                params.update({f"{name}__{key}": inner for key, inner in value.get_params().items()})
            params[name] = value
        return params

    def set_params(self, **params: Any) -> Estimator:
        valid = set(self._param_names())
        for key, value in params.items():
            name, _, inner = key.partition("__")
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid: {sorted(valid)}")
            if inner:
                getattr(self, name).set_params(**{inner: value})
            else:
                setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._param_names())
        return f"{type(self).__name__}({shown})"
