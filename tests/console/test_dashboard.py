"""The console dashboard: exact figures of a seeded day (Beijing time), HQ's all-stores view,
who may open it, and a fixed number of queries whatever the number of orders."""

import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.staticfiles import finders
from django.urls import reverse

from orders.console.dashboard_data import dashboard_data
from orders.models import ActorKind, Channel, Fulfilment, Order, OrderEvent, OrderStatus
from retail.models import OutboxDelivery, OutboxEvent
from tests import factories

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 11, 25, 15, 30, tzinfo=SH)
S = OrderStatus
MINI, H5, COUNTER, PARTNER = Channel.MINI_SHOP, Channel.H5, Channel.COUNTER, Channel.PARTNER
DELIVERY, PICKUP, AT_COUNTER = Fulfilment.DELIVERY, Fulfilment.PICKUP, Fulfilment.COUNTER

# A store: the frame's 5 (session, user, store, roles, the store switcher) and the dashboard's
# 8: today by hour and channel, how far the sales roll-up has got, 30 days by day (rolled-up
# days and the rest from the orders in one UNION), the waiting counts, the oldest waiting
# orders, low stock, the outbox counts and the latest troubled deliveries.
STORE_QUERIES = 13
# All stores: the frame's 6 (no store; HQ's has_perm asks ModelBackend for the user's and her
# groups' permissions) and 7: no low stock, the per-store table gives the waiting counts.
ALL_QUERIES = 13


@pytest.fixture(autouse=True)
def _english(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 11) -> datetime:
    return datetime(2025, month, day, hour, minute, second, tzinfo=SH)


def order(store, channel, fulfilment, status, total, paid_at=None, refunded=0) -> Order:
    return factories.OrderFactory(
        store=store,
        channel=channel,
        fulfilment=fulfilment,
        status=status,
        subtotal_fen=total,
        total_fen=total,
        paid_fen=total if paid_at else 0,
        refunded_fen=refunded,
        paid_at=paid_at,
    )


def trouble(order_or_id, state, subscriber="wechat_sync", aggregate_type="order", error=""):
    aggregate_id = getattr(order_or_id, "pk", order_or_id)
    number = getattr(order_or_id, "number", None)
    event = OutboxEvent.objects.create(
        event_type="order.paid",
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        payload={"order": {"number": number}} if number else {},
    )
    return OutboxDelivery.objects.create(
        event=event,
        subscriber=subscriber,
        state=state,
        attempts=12 if state == "dead" else 3,
        attempt_limit=12,
        last_error=error,
        delivered_at=NOW if state == "delivered" else None,
    )


@pytest.fixture
def day(frozen, store_a, store_b):
    """A day in store A (and a little in B): orders in every channel, refunds, a partner's
    delivery, yesterday's and older orders, troubled outbox deliveries, stock to reorder."""
    a = {
        "ship": order(store_a, MINI, DELIVERY, S.PAID, 5000, at(25, 9, 15)),
        "ready": order(store_a, MINI, PICKUP, S.READY_FOR_PICKUP, 3000, at(25, 10, 40)),
        "refunded_whole": order(store_a, MINI, PICKUP, S.CANCELLED, 2000, at(25, 13), 2000),
        "routed": order(store_a, MINI, DELIVERY, S.PAID, 3990, at(25, 11, 30)),
        "prepare": order(store_a, H5, PICKUP, S.PAID, 2590, at(25, 11, 5)),
        "refunded_part": order(store_a, H5, DELIVERY, S.SHIPPED, 6000, at(25, 10, 10), 1500),
        "counter": order(store_a, COUNTER, AT_COUNTER, S.COMPLETED, 1290, at(25, 9, 50)),
        "counter_2": order(store_a, COUNTER, AT_COUNTER, S.COMPLETED, 880, at(25, 14, 20)),
        # The first second of the local day.
        "midnight": order(store_a, COUNTER, AT_COUNTER, S.COMPLETED, 500, at(25, 0)),
        "partner": order(store_a, PARTNER, DELIVERY, S.PAID, 4590, at(25, 12, 30)),
        # Not today: the last second of yesterday, yesterday's order refunded today, an order
        # paid two days ago still waiting, the first and the day before the 30-day window.
        "last_second": order(store_a, COUNTER, AT_COUNTER, S.COMPLETED, 700, at(24, 23, 59, 59)),
        "yesterday": order(store_a, MINI, PICKUP, S.COMPLETED, 1500, at(24, 18), 500),
        "old_waiting": order(store_a, MINI, DELIVERY, S.PAID, 2200, at(23, 8)),
        "day_29": order(store_a, H5, PICKUP, S.COMPLETED, 1000, at(27, 12, month=10)),
        "day_30": order(store_a, H5, PICKUP, S.COMPLETED, 1200, at(26, 12, month=10)),
        # Never paid.
        "unpaid": order(store_a, H5, PICKUP, S.PENDING_PAYMENT, 999),
    }
    OrderEvent.objects.create(order=a["routed"], kind="order.routed", actor_kind=ActorKind.SYSTEM)
    b = {
        "ship": order(store_b, MINI, DELIVERY, S.PAID, 7777, at(25, 10)),
        "counter": order(store_b, COUNTER, AT_COUNTER, S.COMPLETED, 333, at(25, 15)),
    }
    deliveries = {
        "failed": trouble(a["ship"], "failed", error="HTTP 503 from api.weixin.qq.com"),
        "dead": trouble(a["prepare"], "dead", subscriber="partner_pushes", error="HTTP 400"),
        "delivered": trouble(a["ship"], "delivered", subscriber="partner_pushes"),
        "pending": trouble(a["partner"], "pending"),
        "b_dead": trouble(b["ship"], "dead"),
        # Another aggregate whose id reads like store A's order id.
        "member_failed": trouble(a["ship"].pk, "failed", aggregate_type="member"),
    }
    # Stock: safety stock 5, 2 left, packs of 6 -> one pack; 0 left of a safety stock of 2
    # -> 2; enough of a third; B's shortage is B's.
    for code, name, on_hand, safety_stock, pack_size in (
        ("RICE-5KG", "东北大米 5kg", 2, 5, 6),
        ("OIL-5L", "花生油 5L", 0, 2, 1),
        ("SALT", "食盐", 10, 5, 1),
    ):
        sku = factories.SKUFactory(code=code, product=factories.ProductFactory(name=name))
        factories.StockItemFactory(
            store=store_a, sku=sku, on_hand=on_hand, safety_stock=safety_stock, pack_size=pack_size
        )
    factories.StockItemFactory(store=store_b, on_hand=0, safety_stock=3)
    return {"a": a, "b": b, "deliveries": deliveries}


def card(response, name: str) -> str:
    match = re.search(
        rf'id="card-{name}"[^>]*><div class="label">[^<]*</div><div class="value[^"]*">([^<]*)<',
        response.content.decode(),
    )
    assert match, name
    return match.group(1)


def chart_data(response) -> dict:
    match = re.search(
        r'<script id="dashboard-data" type="application/json">(.*?)</script>',
        response.content.decode(),
    )
    return json.loads(match.group(1))


def rows(response, table: str) -> list[list[str]]:
    body = re.search(
        rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', response.content.decode(), re.S
    ).group(1)
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_a_stores_day_in_exact_figures(client, day, clerk_a, django_assert_num_queries):
    a = day["a"]
    client.force_login(clerk_a)

    with django_assert_num_queries(STORE_QUERIES):
        response = client.get("/console/SH001/dashboard/")

    assert response.status_code == 200
    # Paid today: 29,840 fen in 10 orders; refunded of them 3,500 (one in full, one in part).
    assert [
        card(response, name)
        for name in ("net", "orders", "refunded", "to-ship", "to-prepare", "ready", "with-partner")
    ] == ["¥263.40", "10", "¥35.00", "3", "1", "1", "1"]
    assert [card(response, name) for name in ("low-stock", "outbox-failed", "outbox-dead")] == [
        "2",
        "1",
        "1",
    ]
    assert rows(response, "channels") == [
        ["WeChat mini-shop", "4", "¥139.90", "¥20.00", "¥119.90"],
        ["H5 shop", "2", "¥85.90", "¥15.00", "¥70.90"],
        ["counter", "3", "¥26.70", "¥0.00", "¥26.70"],
        ["partner", "1", "¥45.90", "¥0.00", "¥45.90"],
    ]
    data = chart_data(response)
    hourly = [0] * 24
    hourly[0], hourly[9], hourly[10], hourly[11], hourly[12], hourly[14] = (
        500,
        5000 + 1290,
        3000 + 6000 - 1500,
        2590 + 3990,
        4590,
        880,
    )
    assert data["hourly"] == hourly
    assert data["hours"][:3] == ["00", "01", "02"]
    assert data["channels"] == ["WeChat mini-shop", "H5 shop", "counter", "partner"]
    assert data["channel_net"] == [11990, 7090, 2670, 4590]
    # 30 days, 10-27 to 11-25: 10-26 is outside; yesterday has its last second and its order
    # refunded today (1,500 - 500).
    assert (data["days"][0], data["days"][-1], len(data["days"])) == ("10-27", "11-25", 30)
    daily = dict(
        zip(data["days"], zip(data["daily"], data["daily_orders"], strict=True), strict=True)
    )
    assert {day_: figures for day_, figures in daily.items() if figures != (0, 0)} == {
        "10-27": (1000, 1),
        "11-23": (2200, 1),
        "11-24": (700 + 1000, 2),
        "11-25": (26340, 10),
    }
    # The oldest first; the partner's delivery is not the store's to do.
    assert [row[0] for row in rows(response, "waiting")] == [
        a[key].number for key in ("old_waiting", "ship", "ready", "prepare", "partner")
    ]
    # SKU, product, available, reorder point, sold per day, suggested order.
    assert rows(response, "low-stock") == [
        ["RICE-5KG", "东北大米 5kg", "2", "5", "0.0", "6"],
        ["OIL-5L", "花生油 5L", "0", "2", "0.0", "2"],
    ]
    # Store A's troubled deliveries only: not B's, not another aggregate's, not open ones.
    outbox = rows(response, "outbox")
    assert sorted((row[1], row[2], row[3], row[4]) for row in outbox) == sorted(
        [
            (a["ship"].number, "wechat_sync", "failed, will retry", "3"),
            (a["prepare"].number, "partner_pushes", "dead", "12"),
        ]
    )
    assert "HTTP 503 from api.weixin.qq.com" in response.content.decode()
    assert 'id="low-stock-note"' not in response.content.decode()


def test_hq_sees_every_store_summed_and_each_store_on_its_line(
    client, day, hq_user, django_assert_num_queries
):
    quiet = factories.StoreFactory(code="SH003", name="陆家嘴店")
    client.force_login(hq_user)

    with django_assert_num_queries(ALL_QUERIES):
        response = client.get("/console/all/dashboard/")

    assert response.status_code == 200
    # A's 29,840 in 10 orders and B's 7,777 + 333 in 2.
    assert [
        card(response, name)
        for name in ("net", "orders", "refunded", "to-ship", "to-prepare", "ready", "with-partner")
    ] == ["¥344.50", "12", "¥35.00", "4", "1", "1", "1"]
    # Every failed or dead delivery, whatever it is about.
    assert [card(response, name) for name in ("outbox-failed", "outbox-dead")] == ["2", "2"]
    assert "card-low-stock" not in response.content.decode()
    assert 'id="low-stock-note"' in response.content.decode()
    assert rows(response, "stores") == [
        ["SH001 · 静安寺店", "10", "¥263.40", "3", "1", "1", "1"],
        ["SH002 · 人民广场店", "2", "¥81.10", "1", "0", "0", "0"],
        [f"SH003 · {quiet.name}", "0", "¥0.00", "0", "0", "0", "0"],
    ]
    assert rows(response, "channels")[0] == [
        "WeChat mini-shop",
        "5",
        "¥217.67",
        "¥20.00",
        "¥197.67",
    ]
    data = chart_data(response)
    assert data["hourly"][10] == 3000 + 4500 + 7777
    assert data["hourly"][15] == 333
    assert data["daily"][-1] == 34450
    # The waiting list names the store.
    waiting = rows(response, "waiting")
    assert [row[:2] for row in waiting] == [
        [day["a"]["old_waiting"].number, "SH001"],
        [day["a"]["ship"].number, "SH001"],
        [day["b"]["ship"].number, "SH002"],
        [day["a"]["ready"].number, "SH001"],
        [day["a"]["prepare"].number, "SH001"],
        [day["a"]["partner"].number, "SH001"],
    ]


def test_every_store_links_to_its_own_dashboard(client, frozen, store_a, store_b, hq_user):
    """The switcher and HQ's table make each store's link from one ``reverse()`` (1,000
    stores cost 0.3 s of ``{% url %}``): the same URLs ``reverse()`` gives, a code with a
    character to quote included."""
    factories.StoreFactory(code="SH 004", name="外滩店")
    client.force_login(hq_user)

    page = client.get("/console/all/dashboard/").content.decode()

    expected = [
        reverse("console:dashboard", kwargs={"store_code": code})
        for code in ("SH 004", "SH001", "SH002")
    ]
    assert expected == ["/console/SH%20004/dashboard/", *expected[1:]]
    table = re.findall(r'<tr data-store="[^"]+"><td><a href="([^"]+)">', page)
    switcher = re.findall(r'<option value="(/console/(?!all/)[^"]+)"', page)
    assert table == switcher == expected


def test_hq_may_open_a_single_store(client, day, hq_user):
    client.force_login(hq_user)

    response = client.get("/console/SH002/dashboard/")

    assert response.status_code == 200
    assert [card(response, name) for name in ("net", "orders", "to-ship", "outbox-dead")] == [
        "¥81.10",
        "2",
        "1",
        "1",
    ]
    assert card(response, "low-stock") == "1"


def test_a_clerk_of_a_sees_nothing_of_b_and_strangers_sign_in_first(client, day, clerk_a):
    anonymous = client.get("/console/SH001/dashboard/")
    client.force_login(clerk_a)
    other = client.get("/console/SH002/dashboard/")
    all_stores = client.get("/console/all/dashboard/")

    assert (anonymous.status_code, anonymous["Location"]) == (
        302,
        "/admin/login/?next=/console/SH001/dashboard/",
    )
    assert (other.status_code, all_stores.status_code) == (404, 404)
    assert day["b"]["ship"].number not in other.content.decode()


def test_the_page_draws_with_the_vendored_chart_js_and_no_cdn(client, frozen, clerk_a):
    client.force_login(clerk_a)

    response = client.get("/console/SH001/dashboard/")

    html = response.content.decode()
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts == [
        "/static/console/vendor/chartjs/chart.umd.js",
        "/static/console/dashboard.js",
    ]
    library = finders.find("console/vendor/chartjs/chart.umd.js")
    assert library is not None
    with open(library, encoding="utf-8") as source:
        assert source.read(64).startswith("/*!\n * Chart.js v4.")
    assert finders.find("console/vendor/chartjs/LICENSE.md") is not None
    # A day without orders: zeros everywhere, no doughnut of nothing.
    assert chart_data(response)["hourly"] == [0] * 24
    assert 'id="chart-channels"' not in html
    assert "No orders paid yet today." in html


def bulk_orders(store, count: int, *, start: int = 0) -> list[Order]:
    """``count`` orders over the last 40 days in every channel and state: paid ones with a
    refund now and then, unpaid ones, waiting ones."""
    channels = [
        (MINI, DELIVERY, S.PAID),
        (MINI, PICKUP, S.READY_FOR_PICKUP),
        (H5, PICKUP, S.PAID),
        (H5, DELIVERY, S.SHIPPED),
        (COUNTER, AT_COUNTER, S.COMPLETED),
        (PARTNER, DELIVERY, S.DELIVERED),
        (MINI, PICKUP, S.PENDING_PAYMENT),
    ]
    orders = []
    for i in range(start, start + count):
        channel, fulfilment, status = channels[i % len(channels)]
        total = 100 + (i * 37) % 9000
        paid_at = None if status == S.PENDING_PAYMENT else NOW - timedelta(minutes=(i * 7) % 57600)
        paid = total if paid_at else 0
        orders.append(
            Order(
                number=f"BULK{i:012d}",
                channel=channel,
                fulfilment=fulfilment,
                store=store,
                status=status,
                client_reference=f"bulk-{i}",
                subtotal_fen=total,
                total_fen=total,
                paid_fen=paid,
                refunded_fen=paid // 4 if i % 10 == 0 else 0,
                paid_at=paid_at,
            )
        )
    return Order.objects.bulk_create(orders, batch_size=2000)


def test_ten_thousand_orders_cost_the_same_queries(
    client, day, clerk_a, store_a, django_assert_num_queries
):
    made = bulk_orders(store_a, 10_000)
    client.force_login(clerk_a)

    with django_assert_num_queries(STORE_QUERIES):
        response = client.get("/console/SH001/dashboard/")

    assert response.status_code == 200
    day_start = datetime(2025, 11, 25, tzinfo=SH)
    today = [o for o in made if o.paid_at and o.paid_at >= day_start]
    bulk_net = sum(o.paid_fen - o.refunded_fen for o in today)
    dashboard = response.context["dashboard"]
    assert (dashboard.orders, dashboard.net_fen) == (10 + len(today), 26340 + bulk_net)
    bulk_to_ship = sum(1 for o in made if (o.channel, o.status) == (MINI, S.PAID))
    assert dashboard.queue.to_ship == 3 + bulk_to_ship
    # The oldest waiting orders come first, eight of them.
    assert len(dashboard.waiting_orders) == 8
    assert dashboard.waiting_orders[0].paid_at == min(
        o.paid_at
        for o in [*made, day["a"]["old_waiting"]]
        if o.status in (S.PAID, S.READY_FOR_PICKUP) and o.paid_at
    )


def test_all_stores_with_ten_thousand_orders_cost_the_same_queries(
    client, day, hq_user, store_a, store_b, django_assert_num_queries
):
    bulk_orders(store_a, 6_000)
    bulk_orders(store_b, 4_000, start=6_000)
    client.force_login(hq_user)

    with django_assert_num_queries(ALL_QUERIES):
        response = client.get("/console/all/dashboard/")

    assert response.status_code == 200
    stores = response.context["dashboard"].stores
    assert [row.code for row in stores] == ["SH001", "SH002"]
    assert sum(row.orders for row in stores) == response.context["dashboard"].orders


def test_the_data_at_a_days_first_second(store_a):
    """Right after local midnight, yesterday's orders are yesterday's."""
    order(store_a, COUNTER, AT_COUNTER, S.COMPLETED, 700, at(24, 23, 59, 59))
    order(store_a, COUNTER, AT_COUNTER, S.COMPLETED, 500, at(25, 0))

    data = dashboard_data(store=store_a, now=at(25, 0, 0, 1))

    assert (data.orders, data.net_fen, data.hourly_net_fen[0]) == (1, 500, 500)
    assert data.days[-2:] == [
        (at(24, 0).date(), 1, 700),
        (at(25, 0).date(), 1, 500),
    ]
