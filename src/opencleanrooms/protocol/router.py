"""Maps (HTTP method, raw path) to an operation of the model.

Routing runs on the path exactly as sent, still percent-encoded, so that an ARN label such as
`arn%3Aaws%3A...%2Fabc` stays one segment; labels are percent-decoded only after matching.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

import botocore.model


@dataclass(frozen=True)
class _Template:
    segments: tuple[str | None, ...]  # literal segment, or None for a {label}
    labels: tuple[str, ...]  # label names in order of the None segments
    operation: botocore.model.OperationModel

    @property
    def literal_count(self) -> int:
        return sum(1 for s in self.segments if s is not None)


@dataclass(frozen=True)
class Route:
    operation: botocore.model.OperationModel
    labels: dict[str, str]


class Router:
    """Matches requests against every `requestUri` the model defines."""

    def __init__(self, service_model: botocore.model.ServiceModel) -> None:
        self._table: dict[tuple[str, int], list[_Template]] = {}
        for name in service_model.operation_names:
            op = service_model.operation_model(name)
            uri = op.http["requestUri"]
            if "?" in uri or "+}" in uri:
                raise ValueError(f"unsupported requestUri for {name}: {uri}")
            segments, labels = [], []
            for part in _split(uri):
                if part.startswith("{") and part.endswith("}"):
                    segments.append(None)
                    labels.append(part[1:-1])
                else:
                    segments.append(part)
            template = _Template(tuple(segments), tuple(labels), op)
            self._table.setdefault((op.http["method"], len(segments)), []).append(template)
        for templates in self._table.values():
            # Templates with more literal segments are tried first, so literals win over labels.
            templates.sort(key=lambda t: -t.literal_count)

    def match(self, method: str, raw_path: str) -> Route | None:
        parts = _split(raw_path)
        for template in self._table.get((method, len(parts)), ()):
            values = []
            for want, got in zip(template.segments, parts):
                if want is None:
                    if not got:
                        break
                    values.append(got)
                elif want != got:
                    break
            else:
                decoded = {name: unquote(v) for name, v in zip(template.labels, values)}
                return Route(template.operation, decoded)
        return None



def _split(path: str) -> list[str]:
    path = path.strip("/")
    return path.split("/") if path else []
