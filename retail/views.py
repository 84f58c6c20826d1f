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


@never_cache
@require_GET
def alive(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing (no database, no cache), so a load
    balancer can tell a hung worker from a sick dependency, and benchmarks get the framework's
    own ceiling."""
    return JsonResponse({"status": "alive"})
