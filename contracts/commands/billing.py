"""Commands owned by billing_service (queue ``billing``): plan changes, period close, payments."""

from datetime import date

from pydantic import Field

from contracts.base import CommandData, Id, ShortText


class ChangePlan(CommandData):
    TYPE = "billing.change_plan"
    SERVICE = "billing"
    plan: Id
    effective: date | None = None  # default: today (UTC)


class ClosePeriod(CommandData):
    """Close an ended month (the scheduler does this on the 1st; operators may close by hand).

    The month under way is refused: its invoice would miss the rest of the month."""

    TYPE = "billing.close_period"
    SERVICE = "billing"
    period: ShortText = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")


class RecordPayment(CommandData):
    TYPE = "billing.record_payment"
    SERVICE = "billing"
    number: ShortText
    amount_cents: int = Field(gt=0)
    method: ShortText = "manual"
    reference: ShortText | None = None


MODELS = (ChangePlan, ClosePeriod, RecordPayment)
