from rest_framework import pagination
from rest_framework.exceptions import NotFound

from retail.errors import BusinessError


class CursorPagination(pagination.CursorPagination):
    """Stable pages under inserts, at constant cost however deep a client pages. A cursor we
    never gave is invalid input (400 ``invalid_cursor``), not a missing page (DRF's 404)."""

    ordering = "-pk"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise BusinessError(
                "invalid_cursor",
                str(self.invalid_cursor_message),
                fields={"cursor": [request.query_params.get(self.cursor_query_param, "")[:40]]},
                status_code=400,
            ) from None
