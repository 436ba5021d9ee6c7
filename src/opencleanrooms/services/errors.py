"""Constructors for the model's errors as services raise them, so each kind is built one way everywhere."""

from __future__ import annotations

from opencleanrooms.errors import ServiceError


def validation(message: str, *, reason: str = "FIELD_VALIDATION_FAILED", field: str | None = None,
               field_message: str | None = None) -> ServiceError:
    field_list = [{"name": field, "message": field_message or message}] if field else None
    return ServiceError("ValidationException", message, reason=reason, fieldList=field_list)


def invalid_configuration(message: str) -> ServiceError:
    return validation(message, reason="INVALID_CONFIGURATION")


def conflict(message: str, resource_id: str, resource_type: str, reason: str) -> ServiceError:
    return ServiceError("ConflictException", message, resourceId=resource_id, resourceType=resource_type,
                        reason=reason)


def not_found(message: str, resource_id: str, resource_type: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", message, resourceId=resource_id, resourceType=resource_type)


def access_denied(message: str) -> ServiceError:
    return ServiceError("AccessDeniedException", message, reason="INSUFFICIENT_PERMISSIONS")
