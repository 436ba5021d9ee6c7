"""The CUSTOM analysis rule (placeholder until the full enforcement lands)."""

from opencleanrooms.policy.parse import reject


def precheck(tree, relations, request):
    reject("CUSTOM not yet")


def enforce(tree, relations, request):
    reject("CUSTOM not yet")
