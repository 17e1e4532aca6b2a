"""quota: exact rate limits and usage quotas for HTTP APIs and OpenAI-compatible gateways."""

from __future__ import annotations

from . import views  # quota.views.stats / astats / validate: the /stats and /validate bodies
from .alerts import Alert
from .asgi import KeyCache, OpenAIProfile, QuotaMiddleware
from .backends.breaker import Breaker
from .catalog import Catalog, HeaderConfig, Plan, Principal
from .decision import Decision, LimitState
from .errors import (
    BackendError,
    CatalogError,
    ConfigError,
    CostError,
    PrincipalError,
    QuotaError,
    UnknownPlanError,
)
from .limit import Limit
from .limiter import AsyncLimiter, Limiter
from .observe import Observer

__version__ = "0.1.0"

__all__ = [
    "Alert",
    "AsyncLimiter",
    "BackendError",
    "Breaker",
    "Catalog",
    "CatalogError",
    "ConfigError",
    "CostError",
    "Decision",
    "HeaderConfig",
    "KeyCache",
    "Limit",
    "LimitState",
    "Limiter",
    "Observer",
    "OpenAIProfile",
    "Plan",
    "Principal",
    "PrincipalError",
    "QuotaError",
    "QuotaMiddleware",
    "UnknownPlanError",
    "__version__",
    "views",
]
