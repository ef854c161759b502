"""A link registered once at Belvo: after an attempt Belvo may have acted on, find the link it made.

A POST /api/links/ that got no answer, a 408 or a 5xx may still have registered the link. Posting
again would register it twice, or meet Belvo's refusal of a duplicate and read as a failure. So when
an earlier attempt of the registration was uncertain, the next one first looks the link up with
Belvo's links list, filtered by the registration's `external_id` (the service sets one, the session's
id, when the caller gives none) and institution, and adopts what it finds:

- no link: Belvo never made it, and the register call is made now. If Belvo refuses that call (a 400:
  perhaps a duplicate of a link the earlier attempt was still making), the list is read once more.
- one `valid` link: the earlier attempt completed; that link is the registration's result.
- one link in any other status: `token_required` (its 428 was lost with the answer), `unconfirmed` or
  `invalid`. Belvo's answer for such a link is its update call, PUT /api/links/{id}/, with the
  credentials: the same ones are sent, so the login runs again and a 428 opens this session's MFA step
  exactly as the register call's would have.
- several links: they cannot be told apart (a caller's external_id reused within a minute); nothing is
  adopted and the step ends upstream_outcome_unknown, listing them for the backend.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from mfa.belvo import BelvoClient, UpstreamAnswer

log = logging.getLogger(__name__)

# A link made before the session began is not this registration's (a caller's external_id can name
# several of their links); the margin covers clock skew between us and Belvo.
CREATED_MARGIN_MS = 60_000
# The fields of Belvo's update call (the spec's LinksPutRequest) a registration's credentials carry.
UPDATE_FIELDS = ("password", "password2", "username_type", "certificate", "private_key")


class RegistrationUnresolved(Exception):
    """An uncertain registration whose link cannot be found or told apart: the step ends with `outcome`."""

    def __init__(self, message: str, links: list[Any] | None = None) -> None:
        super().__init__(message)
        self.outcome = {"code": "upstream_outcome_unknown", "message": message, "result": links}


def update_body(fields: dict[str, Any]) -> dict[str, Any]:
    """The update call's body from a registration's fields."""
    return {name: fields[name] for name in UPDATE_FIELDS if fields.get(name) is not None}


def _created_ms(link: dict[str, Any]) -> int | None:
    try:
        return int(datetime.fromisoformat(str(link["created_at"]).replace("Z", "+00:00")).timestamp() * 1000)
    except (KeyError, ValueError):
        return None


def _candidates(page: Any, fields: dict[str, Any], started_at_ms: int) -> list[dict[str, Any]]:
    results = page.get("results") if isinstance(page, dict) else None
    if not isinstance(results, list):
        raise RegistrationUnresolved("Belvo's links list was not the expected JSON")
    found = []
    for link in results:
        if not isinstance(link, dict) or "id" not in link:
            continue
        # Belvo filtered already; checked again so a list that ignored a filter cannot mislead us.
        if (link.get("external_id"), link.get("institution")) != (
            fields["external_id"],
            fields["institution"],
        ):
            continue
        created = _created_ms(link)
        if created is None or created >= started_at_ms - CREATED_MARGIN_MS:
            found.append(link)
    return found


def register_once(
    client: BelvoClient, fields: dict[str, Any], *, earlier_uncertain: bool, started_at_ms: int
) -> UpstreamAnswer:
    """The register call, or, after an uncertain attempt, what adopting the link it made answers.

    Returns Belvo's answer to decide on: the register POST's, the update PUT's, the links list's
    own failure (retried or failed as any answer), or the found `valid` link as a 200. Raises
    RegistrationUnresolved when no call can safely be made.
    """
    if not earlier_uncertain:
        return client.register(fields)
    if not fields.get("external_id") or not fields.get("institution"):
        raise RegistrationUnresolved(
            "An earlier attempt may have registered the link; it cannot be looked up"
        )
    found = _find(client, fields, started_at_ms)
    if isinstance(found, UpstreamAnswer):
        return found
    if found:
        return _adopt(client, fields, found)
    log.info("registration: no link from the earlier attempt; registering now")
    answer = client.register(fields)
    if answer.status != 400:
        return answer
    # Refused: perhaps as a duplicate of the link the earlier attempt was still making when we looked.
    again = _find(client, fields, started_at_ms)
    if isinstance(again, UpstreamAnswer) or not again:
        return answer
    return _adopt(client, fields, again)


def _find(
    client: BelvoClient, fields: dict[str, Any], started_at_ms: int
) -> list[dict[str, Any]] | UpstreamAnswer:
    """The links this registration may have made, or the links list's answer when it failed."""
    listing = client.find_links(external_id=fields["external_id"], institution=fields["institution"])
    if listing.status != 200:
        return listing
    if not listing.is_json:
        raise RegistrationUnresolved("Belvo's links list was not the expected JSON")
    return _candidates(listing.body, fields, started_at_ms)


def _adopt(client: BelvoClient, fields: dict[str, Any], found: list[dict[str, Any]]) -> UpstreamAnswer:
    """The registration's answer from the one link it made; RegistrationUnresolved for several."""
    if len(found) > 1:
        raise RegistrationUnresolved(
            f"An earlier attempt may have registered the link, and {len(found)} links match it", found
        )
    [link] = found
    if link.get("status") == "valid":
        log.info("registration: adopted link %s, registered by an earlier attempt", link["id"])
        return UpstreamAnswer(200, link, True)
    log.info("registration: link %s is %s; finishing it with the update call", link["id"], link.get("status"))
    return client.update_link(str(link["id"]), update_body(fields))
