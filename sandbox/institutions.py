"""The sandbox's banks and what their logins do, after Belvo's sandbox guide.

Banks without MFA (`erebor_*`, `gringotts_*`) log in with any credentials. The MFA banks (`heimdall_*`
retail, the `gotham_*` business banks) ask for a token when given one of the guide's MFA credential
pairs, and log in like the others with anything else. On every bank, `user_invalid` or
`pass_invalid` is the guide's failed login (`400 login_error`).
"""

from __future__ import annotations

from .errors import BelvoError

COUNTRIES = ("mx", "co", "br")
WITHOUT_MFA = tuple(f"{name}_{country}_retail" for name in ("erebor", "gringotts") for country in COUNTRIES)
WITH_MFA = tuple(
    [f"heimdall_{country}_retail" for country in COUNTRIES]
    + [f"gotham_{country}_business" for country in COUNTRIES]
)
INSTITUTIONS = (*WITHOUT_MFA, *WITH_MFA)

# On an MFA bank, username/password -> the challenge its login answers with (mfa.TOKEN_TYPES).
MFA_CREDENTIALS: dict[tuple[str, str], str] = {
    ("mfa_numeric", "numeric_code"): "numeric",
    ("mfa_qr", "qr_code"): "qr_code",
    ("mfa_default", "pass_valid"): "device",  # Belvo's guide: a code the user's token device shows
    # The sandbox's own (not in Belvo's guide): an approval in the bank's app, nothing to type.
    ("mfa_approval", "pass_valid"): "approval",
}
FAILED_LOGIN = ("user_invalid", "pass_invalid")


def check_institution(institution: object) -> str:
    """The institution's name, or Belvo's field error for one it does not know."""
    if institution not in INSTITUTIONS:
        raise BelvoError(
            400, "does_not_exist", f'Object with name "{institution}" does not exist.', "institution"
        )
    return str(institution)


def login(institution: str, username: str, password: str | None) -> str | None:
    """Log in at the bank: the challenge type it asks for (None: logged in), or Belvo's login error."""
    if username == FAILED_LOGIN[0] or password == FAILED_LOGIN[1]:
        raise BelvoError(400, "login_error", "Invalid credentials provided to login to the institution")
    if institution in WITH_MFA:
        return MFA_CREDENTIALS.get((username, password or ""))
    return None
