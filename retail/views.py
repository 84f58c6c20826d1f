from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from retail.health import platform_health


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 while orders can be taken (``ok`` or ``degraded``), 503 when they cannot."""
    report = platform_health()
    return JsonResponse(report, status=503 if report["status"] == "down" else 200)
