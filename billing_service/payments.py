"""Payment providers: the boundary between "money arrived" and ``billing.payment_recorded``.

billing_service stays the single writer of payments: it finds the invoice, asks the
provider named by the command's ``method`` to confirm the payment, refuses more than is
outstanding, and publishes the event. A provider only says what was paid, or refuses:

- :class:`ManualProvider` (``method: manual``, the default): a system admin asserts a
  bank transfer or similar arrived (``relaydesk admin record-payment``).
- A card or bank provider adapter implements the same protocol: ``confirm`` verifies the
  provider's record of the charge (its webhook, signature or API) and returns the amount
  it confirms; its webhook endpoint sends ``billing.record_payment`` with its ``method``.

Providers are injected into :class:`billing_service.service.BillingService` by constructor.
"""

from dataclasses import dataclass
from typing import Any, Protocol

from contracts import Actor
from contracts.commands.billing import RecordPayment

TRUSTED_KINDS = frozenset({"admin", "system"})  # operators and services; never a tenant's agent


class PaymentRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Payment:
    """What a provider confirms was paid (becomes ``billing.payment_recorded``)."""

    amount_cents: int
    method: str
    reference: str | None = None


class PaymentProvider(Protocol):
    method: str  # the ``method`` commands name it by, recorded on the event

    async def confirm(
        self, request: RecordPayment, actor: Actor, invoice: dict[str, Any]
    ) -> Payment:
        """The payment as the provider confirms it, or raise :class:`PaymentRefused`."""
        ...


class ManualProvider:
    """A payment a system admin saw arrive: trusted as stated, from operators only."""

    method = "manual"

    async def confirm(
        self, request: RecordPayment, actor: Actor, invoice: dict[str, Any]
    ) -> Payment:
        if actor.kind not in TRUSTED_KINDS:
            raise PaymentRefused("forbidden", "manual payments are recorded by a system admin")
        return Payment(request.amount_cents, self.method, request.reference)
