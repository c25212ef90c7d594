"""thinkgate: the Python client SDK and the ``thinkgate`` command line.

Quick start::

    import thinkgate
    client = thinkgate.Client()  # THINKGATE_BASE_URL / THINKGATE_API_KEY
    reply = client.chat([{"role": "user", "content": "2+2?"}], max_thinking_tokens=256)
    print(reply.choices[0].message.content, reply.thinkgate.thinking_budget)

Importing this package is cheap and pulls in no server dependency (FastAPI,
torch, scikit-learn, numpy): names are loaded on first use (PEP 562), and
only the SDK's own modules (openai, httpx2, pydantic) are ever imported here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for IDEs and type checkers only; nothing is imported at run time
    from ._retry import RetryPolicy
    from ._streaming import AsyncDecisionStream, DecisionStream
    from .async_client import AsyncClient
    from .client import Client
    from .errors import (
        APIConnectionError,
        APIError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BackendUnavailable,
        BudgetExceeded,
        InvalidRequest,
        NotFound,
        PermissionDenied,
        RateLimited,
        ServerError,
        ThinkgateError,
    )
    from .types import (
        BudgetStatus,
        ChatCompletion,
        ChatCompletionChunk,
        Completion,
        Decision,
        DecisionCost,
        DecisionUsage,
        FeedbackResult,
        Predicted,
    )

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncDecisionStream",
    "AuthenticationError",
    "BackendUnavailable",
    "BudgetExceeded",
    "BudgetStatus",
    "ChatCompletion",
    "ChatCompletionChunk",
    "Client",
    "Completion",
    "Decision",
    "DecisionCost",
    "DecisionStream",
    "DecisionUsage",
    "FeedbackResult",
    "InvalidRequest",
    "NotFound",
    "PermissionDenied",
    "Predicted",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "ThinkgateError",
]

# public name -> submodule that defines it (loaded on first access)
_EXPORTS: dict[str, str] = {
    "Client": "client",
    "AsyncClient": "async_client",
    "RetryPolicy": "_retry",
    "DecisionStream": "_streaming",
    "AsyncDecisionStream": "_streaming",
    "APIConnectionError": "errors",
    "APIError": "errors",
    "APIStatusError": "errors",
    "APITimeoutError": "errors",
    "AuthenticationError": "errors",
    "BackendUnavailable": "errors",
    "BudgetExceeded": "errors",
    "InvalidRequest": "errors",
    "NotFound": "errors",
    "PermissionDenied": "errors",
    "RateLimited": "errors",
    "ServerError": "errors",
    "ThinkgateError": "errors",
    "BudgetStatus": "types",
    "ChatCompletion": "types",
    "ChatCompletionChunk": "types",
    "Completion": "types",
    "Decision": "types",
    "DecisionCost": "types",
    "DecisionUsage": "types",
    "FeedbackResult": "types",
    "Predicted": "types",
}


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'thinkgate' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value  # cache: later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
