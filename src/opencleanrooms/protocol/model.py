"""The botocore service model this server speaks, loaded once at run time.

Everything protocol-shaped (routes, input and output shapes, error shapes and their HTTP status codes) is read
from here; nothing is hand-copied.
"""

from __future__ import annotations

import functools

import botocore
import botocore.loaders
import botocore.model

SERVICE_NAME = "cleanrooms"


@functools.cache
def load_service_model(service_name: str = SERVICE_NAME) -> botocore.model.ServiceModel:
    """Load (once per process) the service model shipped with the installed botocore."""
    loader = botocore.loaders.Loader()
    data = loader.load_service_model(service_name, "service-2")
    return botocore.model.ServiceModel(data, service_name=service_name)


def botocore_version() -> str:
    return botocore.__version__
