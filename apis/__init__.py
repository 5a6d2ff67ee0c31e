"""Dialect bindings: one module per payment API the suite speaks (``API_DIALECT``).

``contract`` (default, ``api-contract.md``, the bundled sandbox), ``ecosystem`` (seed 000's
FastAPI PaymentService and its MockServer BankingAPI) and ``baseline`` (seed 001's Go
``payment-service-baseline``) ship here; a dotted module path names a team's own binding (a
module with ``BINDING = SomeBinding()``, see ``apis/base.py``)."""

from __future__ import annotations

import importlib
from functools import lru_cache

from apis.base import Binding

BUILTIN = {"contract": "apis.contract", "ecosystem": "apis.ecosystem", "baseline": "apis.baseline"}


class BindingError(ValueError):
    pass


def load(dialect: str) -> Binding:
    """The binding named by ``dialect``: a built-in name or a dotted module path."""
    module_name = BUILTIN.get(dialect, dialect)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BindingError(f"cannot import module {module_name!r} ({exc})") from None
    binding = getattr(module, "BINDING", None)
    if not isinstance(binding, Binding):
        raise BindingError(f"module {module_name!r} has no BINDING (an instance of apis.base.Binding)")
    return binding


@lru_cache(maxsize=1)
def current() -> Binding:
    """The binding ``API_DIALECT`` names (validated with the settings, so this cannot fail)."""
    from config import get_settings

    return load(get_settings().api_dialect)
