"""Schemathesis hooks for fulfil: every request gets a fresh Idempotency-Key.

fulfil answers 422 when one key is sent again with another body (SPEC
§2.1), which is right; a fuzzer that draws the same short key twice would
report that as a schema-valid request rejected. A unique key per request
tests what the schema promises.
"""

import uuid

import schemathesis


@schemathesis.hook
def map_headers(ctx, headers):
    if headers is not None and "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    return headers
