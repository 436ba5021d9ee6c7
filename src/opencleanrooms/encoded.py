"""An operation output that is already a JSON document, sent as it is.

List pages are assembled from summaries stored pre-encoded, so that serving a page neither decodes nor encodes
JSON. The bytes must be exactly the JSON the output shape describes.
"""

from __future__ import annotations

import json


class EncodedJson(bytes):
    """JSON bytes of a whole output document."""


def encode(value) -> str:
    """Compact JSON text, as every response body is written."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
