"""`POST /v1/retrievals`: one body per Belvo data resource, validated as Belvo's spec states it.

A mistake Belvo would refuse (a missing date, a year and a day of invoices) is a 422 here, not a
failed session later. The document shows the union of the bodies, told apart by `resource`.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictBool, ValidationInfo, field_validator

from app.schemas import CallbackUrl, ExternalRef, IsoDate, NoToken
from mfa.belvo import DataResource

MAX_INVOICE_DAYS = 365  # Belvo: "The number of days between date_from and date_to cannot be over 365"
MIN_INCOME_DAYS = 90  # Belvo: "You must have at least 90 days between date_from and date_to"
IncomeType = Literal[
    "SALARY",
    "GOVERNMENT",
    "INTEREST",
    "RENT",
    "RETIREMENT",
    "FREELANCE",
    "ALTERNATIVE_INCOME",
    "TRANSFER",
    "DEPOSIT",
    "UNKNOWN",
]


class _Retrieval(NoToken):
    """What every data call takes: the link and save_data (the spec's StandardRequest), our reference."""

    model_config = ConfigDict(extra="forbid")
    resource: str  # each resource's body narrows it to its own name
    link: UUID
    save_data: StrictBool | None = Field(
        None,
        description="Belvo's default is true (201, data kept at Belvo); false answers 200 and keeps none",
    )
    external_ref: ExternalRef | None = None
    callback_url: CallbackUrl | None = None

    def belvo_fields(self) -> dict[str, Any]:
        """The body Belvo's data call takes (`resource` and our `external_ref`, `callback_url` left out)."""
        return self.model_dump(
            mode="json", exclude={"resource", "external_ref", "callback_url", "token"}, exclude_none=True
        )


def _ordered(value: date | None, info: ValidationInfo) -> date | None:
    start = info.data.get("date_from")
    if value is not None and start is not None and value < start:
        raise ValueError("date_to must not be before date_from")
    return value


def _paired(value: date | None, info: ValidationInfo) -> date | None:
    # A date_from that failed validation is missing from info.data: its own error says enough.
    if "date_from" in info.data and (info.data["date_from"] is None) != (value is None):
        raise ValueError("date_from and date_to go together: send both or neither")
    return _ordered(value, info)


class _DateRange(_Retrieval):
    """A data call over a required range of dates (the spec's TransactionsRequest, BalancesRequest)."""

    date_from: IsoDate
    date_to: IsoDate = Field(description="Not before date_from")
    account: UUID | None = Field(None, description="Only this account's data")

    _check_date_to = field_validator("date_to")(_ordered)


class AccountsRetrieval(_Retrieval):
    """`accounts`."""

    resource: Literal["accounts"]


class OwnersRetrieval(_Retrieval):
    """`owners`."""

    resource: Literal["owners"]


class RiskInsightsRetrieval(_Retrieval):
    """`risk-insights`."""

    resource: Literal["risk-insights"]


class PortfoliosRetrieval(_Retrieval):
    """`investments/portfolios` (POST /investments/portfolios/)."""

    resource: Literal["investments/portfolios"]


class TransactionsRetrieval(_DateRange):
    """`transactions`: date_from and date_to are required."""

    resource: Literal["transactions"]


class BalancesRetrieval(_DateRange):
    """`balances`: date_from and date_to are required."""

    resource: Literal["balances"]


class InvoicesRetrieval(_Retrieval):
    """`invoices`: the dates (at most 365 days apart) and the direction are required."""

    resource: Literal["invoices"]
    date_from: IsoDate
    date_to: IsoDate = Field(
        description=f"Not before date_from, and at most {MAX_INVOICE_DAYS} days after it"
    )
    type: Literal["INFLOW", "OUTFLOW"]
    attach_xml: StrictBool | None = None

    @field_validator("date_to")
    @classmethod
    def _within_a_year(cls, value: date, info: ValidationInfo) -> date:
        _ordered(value, info)
        start = info.data.get("date_from")
        if start is not None and (value - start).days > MAX_INVOICE_DAYS:
            raise ValueError(f"date_from and date_to must be at most {MAX_INVOICE_DAYS} days apart")
        return value


class IncomesRetrieval(_Retrieval):
    """`incomes`: both dates (at least 90 days apart) or neither."""

    resource: Literal["incomes"]
    date_from: IsoDate | None = None
    date_to: IsoDate | None = Field(
        None,
        validate_default=True,
        description=f"With date_from or not at all; at least {MIN_INCOME_DAYS} days after it",
    )
    allowed_income_types: Annotated[list[IncomeType], Field(min_length=1, max_length=10)] | None = None
    minimum_confidence_level: Literal["HIGH", "MEDIUM", "LOW"] | None = None

    @field_validator("date_to")
    @classmethod
    def _long_enough(cls, value: date | None, info: ValidationInfo) -> date | None:
        _paired(value, info)
        start = info.data.get("date_from")
        if value is not None and start is not None and (value - start).days < MIN_INCOME_DAYS:
            raise ValueError(f"date_from and date_to must be at least {MIN_INCOME_DAYS} days apart")
        return value


class RecurringExpensesRetrieval(_Retrieval):
    """`recurring-expenses`: both dates or neither."""

    resource: Literal["recurring-expenses"]
    date_from: IsoDate | None = None
    date_to: IsoDate | None = Field(None, validate_default=True, description="With date_from or not at all")

    _check_date_to = field_validator("date_to")(_paired)


class EmploymentRecordsRetrieval(_Retrieval):
    """`employment-records`."""

    resource: Literal["employment-records"]
    attach_pdf: StrictBool | None = None


Retrieval = (
    AccountsRetrieval
    | TransactionsRetrieval
    | BalancesRetrieval
    | OwnersRetrieval
    | InvoicesRetrieval
    | IncomesRetrieval
    | RecurringExpensesRetrieval
    | RiskInsightsRetrieval
    | EmploymentRecordsRetrieval
    | PortfoliosRetrieval
)
BY_RESOURCE: dict[str, type[_Retrieval]] = {
    get_args(model.model_fields["resource"].annotation)[0]: model for model in get_args(Retrieval)
}


class RetrievalBody(RootModel[Annotated[Retrieval, Field(discriminator="resource")]]):
    """`POST /v1/retrievals`: a data resource, the link, and that resource's own fields, as Belvo's spec
    states them; a `token` is refused (MFA goes through the session)."""


class _Resource(BaseModel):
    resource: DataResource


def parse_retrieval(payload: Any) -> _Retrieval:
    """The retrieval body for its `resource`; a ValidationError names the fields (never the union's tag)."""
    resource = _Resource.model_validate(payload).resource
    return BY_RESOURCE[resource].model_validate(payload)
