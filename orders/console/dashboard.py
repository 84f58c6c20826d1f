"""Console: the dashboard, the day at a glance for one store or (HQ) for all stores.

Today's sales and orders by channel, what waits to be fulfilled or picked up, stock to reorder
and outbox deliveries in trouble, with three charts (sales by hour today, by channel today,
the last 30 days) drawn in the browser by the vendored Chart.js
(``retail/static/console/vendor/chartjs/``) from data the page carries in a ``json_script``.
The figures come from ``orders.console.dashboard_data``: a fixed number of queries whatever
the number of orders.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from orders.console.dashboard_data import HISTORY_DAYS, LIST_LIMIT, SHANGHAI, dashboard_data
from retail.console import console_view
from retail.console.context import console_frame, dashboard_urls

PERMISSION = "orders.view_order"


@console_view(PERMISSION, all_stores=True)
def page(request: HttpRequest, store_code: str) -> HttpResponse:
    context = console_frame(request, section="dashboard")
    store = request.console_store
    data = dashboard_data(
        store=store, listed_stores=context["console_stores"] if store is None else ()
    )
    url_of = dashboard_urls()
    for row in data.stores:
        row.url = url_of(row.code)
    low = data.low_stock or []
    context.update(
        dashboard=data,
        chart_data=data.chart_data(),
        # Sections this user may open here, to link the cards to.
        links={entry["key"]: entry["url"] for entry in context["console_nav"]},
        low_stock_shown=low[:LIST_LIMIT],
        low_stock_more=max(len(low) - LIST_LIMIT, 0),
        history_days=HISTORY_DAYS,
        time_zone=SHANGHAI.key,
    )
    return render(request, "console/dashboard.html", context)


urlpatterns = [path("dashboard/", page, name="dashboard")]
