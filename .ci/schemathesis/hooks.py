"""Schemathesis hooks for fulfil: what a request needs that its schema
cannot say. Each hook names the rule it stands in for; none skips an
operation.

They run in `before_call`, so every phase (examples, coverage, fuzzing)
goes through them, and only ever turn a schema-valid request into
another schema-valid request.
"""

import re
import uuid
from datetime import datetime, timedelta, timezone

import schemathesis

# The Idempotency-Key header's schema (src/intake/openapi.rs).
IDEMPOTENCY_KEY = re.compile(r"[!-~]([\t -~]*[!-~])?")


@schemathesis.hook
def before_call(ctx, case, kwargs):
    # A negative case is left as drawn: an edit would make schemathesis
    # revalidate it, and a request meant to lack its Authorization header
    # could then be sent with it. Its repeated key's 422 is a rejection,
    # which is what a negative case expects anyway.
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return
    fresh_idempotency_key(case)
    path = case.operation.path
    if isinstance(case.body, dict):
        if path == "/v1/license-orders/{id}/cancellations":
            with_check_symbols(case.body)
        elif path == "/v1/transfers":
            distinct_partners(case.body)
        elif path == "/v1/trials":
            ends_in_the_future(case.body)


def fresh_idempotency_key(case):
    """One key with another request answers 422 (SPEC §2.1), which is
    right; a fuzzer that draws the same short key twice (the coverage
    phase sends `0` everywhere) would report a valid request rejected.
    A valid key becomes a unique one; an invalid or missing one stays."""
    headers = case.headers or {}
    for name, value in headers.items():
        if name.lower() == "idempotency-key":
            if isinstance(value, str) and len(value) <= 255 and IDEMPOTENCY_KEY.fullmatch(value):
                headers[name] = str(uuid.uuid4())
            return


# License keys (src/licensing/key.rs): 25 symbols of this alphabet, the
# last a Luhn mod 32 check symbol, which no pattern can state.
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
SEPARATORS = re.compile(r"[\s\u2010-\u2015\u2212-]")


def luhn_sum(codes, rightmost_factor):
    factor, total = rightmost_factor, 0
    for code in reversed(codes):
        addend = factor * code
        total += addend // 32 + addend % 32
        factor = 3 - factor
    return total % 32


def with_check_symbols(body):
    """Keys that match the schema's pattern get the right check symbol,
    so they reach the order (and its 404 or 422), not the typo 400."""
    keys = body.get("keys")
    if not isinstance(keys, list):
        return
    for i, key in enumerate(keys):
        if not isinstance(key, str):
            continue
        symbols = [(j, c) for j, c in enumerate(key) if not SEPARATORS.fullmatch(c)]
        codes = [ALPHABET.find(c.upper()) for _, c in symbols]
        if len(codes) != 25 or -1 in codes:
            continue
        check = (32 - luhn_sum(codes[:24], 2)) % 32
        at = symbols[-1][0]
        keys[i] = key[:at] + ALPHABET[check] + key[at + 1 :]


def distinct_partners(body):
    """A transfer's source and destination partners must differ, which
    JSON Schema cannot state: the destination is changed in its last
    character (still a valid id) when the fuzzer drew the same one."""
    source, destination = body.get("source_partner_id"), body.get("destination_partner_id")
    if isinstance(source, str) and source and source == destination:
        body["destination_partner_id"] = destination[:-1] + ("a" if destination[-1] != "a" else "b")


def ends_in_the_future(body):
    """A trial ends in the future, which depends on the server's clock,
    not on the document: a past `ends_at` moves to 30 days from now."""
    ends_at = body.get("ends_at")
    if not isinstance(ends_at, str):
        return
    try:
        at = datetime.fromisoformat(ends_at.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return
    if at.tzinfo is not None and at <= datetime.now(timezone.utc) + timedelta(minutes=5):
        body["ends_at"] = (datetime.now(timezone.utc) + timedelta(days=30)).isoformat()


# 422s that answer what the directory holds, not what the request says:
# a reference to a partner, customer or subscription that is not there
# (or not the caller's), a license that is not the order's. No schema can
# state what is stored, so a schema-valid request may meet them; they are
# the documented 422 of their route. Nothing else is excused: the
# Idempotency-Key 422 (`idempotency-key-reused`) and every 400 still fail.
STORED_STATE_422 = {
    "unknown-reference": "an id the body names is not in the directory",
    "subscription-not-held": "the subscriptions are not the caller's partner's",
    "no-active-partnership": "no partnership with that provider is active",
    "destination-not-related": "the destination has no reseller relationship",
    "partner-without-admin-email": "the stored partner has no admin address",
    "license-not-cancellable": "the keys named are not issued keys of the order",
    "no-issued-key": "the order has no issued key",
    "unknown-license": "the license named is not the order's",
    "not-hypervisor": "the stored order is not a hypervisor order",
    "vm-count-not-higher": "the stored VM count is already as high",
}


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    if getattr(failure, "code", None) != "ST202" or response.status_code != 422:
        return True
    try:
        problem_type = response.json().get("type", "")
    except ValueError:
        return True
    return problem_type.removeprefix("urn:fulfil:problem:") not in STORED_STATE_422
