"""``GET /v1/models`` answered by the middleware from the catalog: the models the caller's plan
may call (``QuotaMiddleware(models="catalog")``, or ``models=[ids...]``).

The list holds the catalog's explicitly listed model ids (the entries of ``[models]`` that are
not globs), plus the ids the operator names (the models the upstream serves that the catalog
leaves to its ``default_tier``), each kept only when ``catalog.allows_model`` admits it for the
caller's effective plan (overrides applied). ``GET /v1/models/{id}`` answers one of them, or a
404 ``model_not_found`` in the OpenAI shape when the plan may not call it or it is not listed:
a caller cannot tell a model it lacks from one that does not exist, as on OpenAI. Both need the
key like any request, charge nothing and carry the account's rate-limit headers, as every free
endpoint does; nothing reaches the app.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..catalog import Catalog, Plan
from ..overrides import plan_of
from .gate import Gate
from .responses import ApiError, send_error, send_json
from .routes import route_key
from .types import Scope, Send

#: Characters that make a ``[models]`` key a glob rather than a model id.
GLOB = frozenset("*?[")


def models_target(path: str) -> str | None:
    """What a normalised path asks of the models route: ``""`` for the list, the model id (as
    spelt) for ``/models/{id}``, None for any other path. ``/v1`` and a trailing slash are
    optional, as on every built-in route."""
    key = route_key(path)
    if key == "/models":
        return ""
    if not key.startswith("/models/"):
        return None
    raw = path.rstrip("/")
    if raw[:4].lower() == "/v1/":
        raw = raw[3:]
    return raw[len("/models/") :]


class ModelList:
    """The models route of one middleware: ``catalog``'s listed ids plus ``extra`` ones, each
    shown to the plans that may call it."""

    def __init__(self, catalog: Catalog, extra: Iterable[str] = ()) -> None:
        ids = [m for m in catalog.models if not GLOB.intersection(m)]
        for model in extra:
            if not isinstance(model, str) or not model:
                raise ValueError(f"models lists model ids (non-empty strings), got {model!r}")
            if model not in ids:
                ids.append(model)
        self.catalog = catalog
        self.ids = tuple(ids)
        self._allowed: dict[tuple[str, ...], tuple[str, ...]] = {}

    def allowed(self, plan: Plan) -> tuple[str, ...]:
        """The ids ``plan`` may call, in listing order; computed once per set of plan models
        (all that ``allows_model`` reads of a plan)."""
        entries = tuple(plan.models)
        found = self._allowed.get(entries)
        if found is None:
            found = tuple(m for m in self.ids if self.catalog.allows_model(plan, m))
            self._allowed[entries] = found
        return found

    def entry(self, model: str) -> dict[str, Any]:
        """One model in the OpenAI shape."""
        return {"id": model, "object": "model", "created": 0, "owned_by": self.catalog.name}

    async def serve(self, gate: Gate, target: str, scope: Scope, send: Send) -> None:
        """Answer the list (``target`` empty) or one model for the request's key."""
        try:
            who = await gate.principal(scope.get("headers") or [])
        except ApiError as error:
            await send_error(send, error)
            return
        headers = await gate.current_headers(who)
        allowed = self.allowed(plan_of(self.catalog, who))  # checked by ``principal``
        if not target:
            body = {"object": "list", "data": [self.entry(m) for m in allowed]}
            await send_json(send, 200, body, headers)
        elif target in allowed:
            await send_json(send, 200, self.entry(target), headers)
        else:
            missing = not_found(target)
            await send_json(send, 404, missing.body(), {**headers, **missing.headers})


def not_found(model: str) -> ApiError:
    """OpenAI's answer for a model that does not exist or that the key may not use."""
    shown = model if len(model) <= 256 else f"{model[:256]}..."
    return ApiError(
        404,
        f"The model '{shown}' does not exist or you do not have access to it.",
        "model_not_found",
    )


def model_list(catalog: Catalog, models: str | Iterable[str]) -> ModelList | None:
    """The middleware's ``models`` option: ``"app"`` (None: the app answers, as any free
    route), ``"catalog"``, or the model ids the upstream serves (answered from the catalog)."""
    if isinstance(models, str):
        if models == "app":
            return None
        if models == "catalog":
            return ModelList(catalog)
        raise ValueError(f"models must be 'app', 'catalog' or a list of model ids, got {models!r}")
    return ModelList(catalog, list(models))


__all__ = ["ModelList", "model_list", "models_target", "not_found"]
