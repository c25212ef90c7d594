"""The admission hook: authentication, budget reservation and settlement.

The server calls these around every request;
:class:`thinkgate.gateway.admission.LedgerAdmission` implements it on the
tenant ledger (budget/), and tests may pass their own to ``create_app``.
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
        """Reserve the decision's worst-case cost or raise BudgetExhausted.

        Sets ``out.reserved_usd`` and ``out.reservation_id``; the gateway calls
        :meth:`settle` only for outcomes whose ``reservation_id`` is set.
        """
        ...

    async def settle(self, tenant: str, out: Outcome) -> None:
        """Settle ``out.actual_usd`` (or release the reservation when it is None). Idempotent."""
        ...
