"""The admission hook: authentication, budget reservation and settlement.

The server calls these around every request; the budget layer (budget/)
provides the real implementation. :class:`NullAdmission` admits everyone as
the anonymous tenant and records nothing.
"""

from __future__ import annotations

from typing import Protocol

from router.seam import RoutingSnapshot
from thinkgate.gateway.pipeline import Outcome
from thinkgate.gateway.validate import ParsedRequest


class Admission(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def authenticate(self, authorization: str | None) -> str:
        """Map the ``Authorization`` header to a tenant id, or raise AuthenticationFailed."""
        ...

    async def admit(self, tenant: str, req: ParsedRequest, out: Outcome, snapshot: RoutingSnapshot) -> None:
        """Reserve the decision's worst-case cost (sets ``out.reserved_usd``) or raise BudgetExhausted."""
        ...

    async def settle(self, tenant: str, out: Outcome) -> None:
        """Settle ``out.actual_usd`` (or release the reservation when it is None). Idempotent."""
        ...


class NullAdmission:
    """No auth, no budget: every request is the anonymous tenant's."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def authenticate(self, authorization: str | None) -> str:
        return "anonymous"

    async def admit(self, tenant: str, req: ParsedRequest, out: Outcome, snapshot: RoutingSnapshot) -> None:
        return None

    async def settle(self, tenant: str, out: Outcome) -> None:
        return None
