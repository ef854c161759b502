"""Small, realistic payloads for Belvo's data resources, stable per link."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from .state import Link, utc_now

CURRENCIES = {"mx": "MXN", "co": "COP", "br": "BRL"}


def currency_of(institution: str) -> str:
    """The currency of the institution's country (`heimdall_co_retail` -> COP)."""
    parts = institution.split("_")
    return CURRENCIES.get(parts[1] if len(parts) > 1 else "", "MXN")


def _id(link: Link, name: str) -> str:
    # Derived ids keep a transaction's account equal to the account the accounts call returned.
    return str(uuid.uuid5(uuid.UUID(link.id), name))


def _days_ago(days: int) -> str:
    return (date.today() - timedelta(days=days)).isoformat()


def accounts(link: Link) -> list[dict[str, Any]]:
    """A checking account and a credit card."""
    currency = currency_of(link.institution)
    common = {"link": link.id, "institution": {"name": link.institution, "type": "bank"}}
    return [
        {
            "id": _id(link, "account-checking"),
            **common,
            "collected_at": utc_now(),
            "category": "CHECKING_ACCOUNT",
            "type": "Cuentas de efectivo",
            "name": "Cuenta Perfiles",
            "number": "4057068115181",
            "balance": {"current": 5874.13, "available": 5621.12},
            "currency": currency,
            "public_identification_name": "CLABE",
            "public_identification_value": "150194683119900273",
        },
        {
            "id": _id(link, "account-card"),
            **common,
            "collected_at": utc_now(),
            "category": "CREDIT_CARD",
            "type": "Tarjeta de crédito",
            "name": "Tarjeta Oro",
            "number": "4915600296363",
            "balance": {"current": -1520.40, "available": 18479.60},
            "currency": currency,
            "public_identification_name": "CARD_NUMBER",
            "public_identification_value": "4915 **** **** 6363",
        },
    ]


def transactions(link: Link) -> list[dict[str, Any]]:
    """Two outflows and an inflow on the checking account."""
    account = accounts(link)[0]
    rows = [
        ("Salario", 25000.0, "INFLOW", 9),
        ("Supermercado", 842.55, "OUTFLOW", 4),
        ("Luz", 312.0, "OUTFLOW", 1),
    ]
    return [
        {
            "id": _id(link, f"transaction-{index}"),
            "account": account,
            "collected_at": utc_now(),
            "value_date": _days_ago(days),
            "accounting_date": _days_ago(days),
            "amount": amount,
            "balance": round(5874.13 - index * 100, 2),
            "currency": account["currency"],
            "description": description,
            "type": kind,
            "status": "PROCESSED",
            "category": "Income & Payments" if kind == "INFLOW" else "Bills & Utilities",
        }
        for index, (description, amount, kind, days) in enumerate(rows)
    ]


def balances(link: Link) -> list[dict[str, Any]]:
    """Two daily balances of the checking account."""
    account = accounts(link)[0]
    return [
        {
            "id": _id(link, f"balance-{days}"),
            "account": account,
            "collected_at": utc_now(),
            "value_date": _days_ago(days),
            "current_balance": amount,
            "balance": amount,
        }
        for days, amount in ((1, 5874.13), (0, 5621.12))
    ]


def owners(link: Link) -> list[dict[str, Any]]:
    """The account holder."""
    return [
        {
            "id": _id(link, "owner"),
            "link": link.id,
            "collected_at": utc_now(),
            "display_name": "Valeria Gómez Ruiz",
            "email": "valeria.gomez@example.com",
            "phone_number": "+52-55-1234-5678",
            "address": "Av. Reforma 222, Ciudad de México",
            "document_id": {"document_type": "CURP", "document_number": "GORV900101MDFMZL09"},
        }
    ]


def invoices(link: Link) -> list[dict[str, Any]]:
    """One issued and one received invoice."""
    currency = currency_of(link.institution)
    return [
        {
            "id": _id(link, f"invoice-{kind}"),
            "link": link.id,
            "collected_at": utc_now(),
            "invoice_identification": str(uuid.uuid5(uuid.UUID(link.id), kind)).upper(),
            "invoice_date": _days_ago(15),
            "type": kind,
            "status": "Vigente",
            "sender_name": "Servicios Gómez SA de CV" if kind == "OUTFLOW" else "Comercial Norte SA",
            "receiver_name": "Comercial Norte SA" if kind == "OUTFLOW" else "Servicios Gómez SA de CV",
            "total_amount": amount,
            "currency": currency,
        }
        for kind, amount in (("INFLOW", 11600.0), ("OUTFLOW", 3480.0))
    ]


def incomes(link: Link) -> list[dict[str, Any]]:
    """One monthly salary stream."""
    account = accounts(link)[0]
    return [
        {
            "account": account,
            "currency": account["currency"],
            "collected_at": utc_now(),
            "income_streams": [
                {"income_type": "SALARY", "frequency": "MONTHLY", "average_income_amount": 25000.0},
            ],
            "total_income_amount": 75000.0,
        }
    ]


def recurring_expenses(link: Link) -> list[dict[str, Any]]:
    """A monthly electricity bill."""
    account = accounts(link)[0]
    return [
        {
            "id": _id(link, "recurring-light"),
            "account": account,
            "name": "Luz",
            "frequency": "MONTHLY",
            "average_transaction_amount": 312.0,
            "median_transaction_amount": 312.0,
            "days_since_last_transaction": 1,
            "category": "BILLS_AND_UTILITIES",
            "payment_type": "UTILITY",
        }
    ]


def risk_insights(link: Link) -> list[dict[str, Any]]:
    """A summary of cash flow and balances."""
    return [
        {
            "id": _id(link, "risk"),
            "link": link.id,
            "collected_at": utc_now(),
            "balances_metrics": {"max_balance_1m": 5874.13, "min_balance_1m": 4210.0},
            "cashflow_metrics": {"positive_to_negative_ratio_1m": 2.1, "sum_positive_1m": 25000.0},
            "credit_cards_metrics": {"num_accounts": 1, "sum_credit_limit": 20000.0},
        }
    ]


def portfolios(link: Link) -> list[dict[str, Any]]:
    """One fixed-income portfolio."""
    currency = currency_of(link.institution)
    return [
        {
            "id": _id(link, "portfolio"),
            "name": "Inversión a plazo",
            "type": "FIXED_INCOME",
            "balance_type": "ASSET",
            "currency": currency,
            "balance_gross": 50000.0,
            "balance_net": 49750.0,
            "instruments": [{"id": _id(link, "instrument"), "type": "CDB", "balance_net": 49750.0}],
        }
    ]


def employment_records(link: Link) -> list[dict[str, Any]]:
    """One employment record with its current job."""
    return [
        {
            "id": _id(link, "employment-record"),
            "link": link.id,
            "collected_at": utc_now(),
            "personal_data": {
                "first_name": "Valeria",
                "last_name": "Gómez Ruiz",
                "document_id": "GORV900101",
            },
            "employment_records": [
                {
                    "employer": "Servicios Gómez SA de CV",
                    "start_date": _days_ago(900),
                    "end_date": None,
                    "base_salary": 25000.0,
                    "currency": currency_of(link.institution),
                }
            ],
        }
    ]


GENERATORS: dict[str, Callable[[Link], list[dict[str, Any]]]] = {
    "accounts": accounts,
    "transactions": transactions,
    "balances": balances,
    "owners": owners,
    "invoices": invoices,
    "incomes": incomes,
    "recurring-expenses": recurring_expenses,
    "risk-insights": risk_insights,
    "employment-records": employment_records,
    "investments/portfolios": portfolios,
}

DATA_RESOURCES = tuple(GENERATORS)
RESUMABLE = ("links", *DATA_RESOURCES)


def generate(resource: str, link: Link, resumed: bool) -> Any:
    """The resource's answer body, in the shape Belvo's spec gives it: a list, except one portfolio
    object, and incomes, whose POST answers one object but whose PATCH answers a list."""
    items = GENERATORS[resource](link)
    if resource == "investments/portfolios" or (resource == "incomes" and not resumed):
        return items[0]
    return items
