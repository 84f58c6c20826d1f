"""One error type for business rules and one shape for every API error.

Every error an API client sees looks like::

    {"error": {"code": "out_of_stock", "message": "...", "fields": {"sku": ["..."]}}}

``code`` is stable: clients match on it. ``message`` is for people and follows the request's
language. ``fields`` names the inputs at fault (empty when no one field is).
"""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class BusinessError(Exception):
    """A rule of the domain refused an action. Raise it from services; views never catch it."""

    status_code = status.HTTP_409_CONFLICT

    def __init__(
        self,
        code: str,
        message: str,
        *,
        fields: dict[str, list[str]] | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or {}
        if status_code is not None:
            self.status_code = status_code


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": str(message), "fields": fields or {}}}


def _fields_of(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    return {"non_field_errors": _flatten(detail)}


def _flatten(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _flatten(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_flatten(item) for item in value]
    return str(value)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, BusinessError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None  # a bug: let Django log it and answer 500

    if isinstance(exc, exceptions.ValidationError):
        code = "validation_error"
        message = _("Some fields are not valid.")
        fields = _fields_of(exc.detail)
    else:
        code = exc.default_code  # DRF's codes are stable: not_found, permission_denied, ...
        message = exc.detail if isinstance(exc.detail, str) else exc.default_detail
        fields = {}
    response.data = error_body(code, message, fields)
    return response


# Django's own error views, for URLs that no DRF view answers. API paths get the JSON shape,
# pages keep Django's templates.


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/health")


def page_not_found(request: HttpRequest, exception: Exception | None = None):
    if _wants_json(request):
        return JsonResponse(error_body("not_found", _("Not found.")), status=404)
    return defaults.page_not_found(request, exception)


def permission_denied(request: HttpRequest, exception: Exception | None = None):
    if _wants_json(request):
        return JsonResponse(
            error_body("permission_denied", _("You do not have permission to do this.")),
            status=403,
        )
    return defaults.permission_denied(request, exception)


def bad_request(request: HttpRequest, exception: Exception | None = None):
    if _wants_json(request):
        return JsonResponse(error_body("bad_request", _("Bad request.")), status=400)
    return defaults.bad_request(request, exception)


def server_error(request: HttpRequest):
    if _wants_json(request):
        return JsonResponse(
            error_body("server_error", _("Something went wrong on our side.")), status=500
        )
    return defaults.server_error(request)
