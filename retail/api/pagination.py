from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    """Stable pages under inserts, at constant cost however deep a client pages."""

    ordering = "-pk"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
