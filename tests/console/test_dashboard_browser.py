"""The console dashboard in headless Chromium (Playwright) against a live server: a store
manager signs in and opens her store's dashboard for a realistic day; the charts are drawn by
the vendored Chart.js from the page's data, nothing is fetched from another host, and
screenshots (Chinese and English) are kept in var/test-artifacts/.

Skipped, with the reason, when Chromium or Playwright is not installed (.ci/run installs both).
"""

import shutil
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from inventory.models import StockMovement
from orders.models import ActorKind, Channel, Fulfilment, Order, OrderEvent, OrderStatus
from retail.models import OutboxDelivery, OutboxEvent
from tests import factories
from tests.live import ARTIFACTS, CHROMIUM, launch

SH = ZoneInfo("Asia/Shanghai")
S = OrderStatus

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright==1.65.2)"
)
pytestmark = [
    pytest.mark.usefixtures("ledger_emptied_after"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
        reason=f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)",
    ),
]


@pytest.fixture
def evening():
    """Today at 19:45 Beijing time (the real date, so cookies stay valid in the browser): a
    day with most of its trade done. The clock runs on from there."""
    today = timezone.now().astimezone(SH).date()
    with time_machine.travel(datetime.combine(today, time(19, 45), tzinfo=SH), tick=True):
        yield datetime.combine(today, time(19, 45), tzinfo=SH)


# (hour, minute, channel, fulfilment, status, total fen, refunded fen) of today's orders.
TODAY = [
    (8, 5, Channel.COUNTER, Fulfilment.COUNTER, S.COMPLETED, 1290, 0),
    (8, 40, Channel.COUNTER, Fulfilment.COUNTER, S.COMPLETED, 3580, 0),
    (9, 12, Channel.MINI_SHOP, Fulfilment.DELIVERY, S.SHIPPED, 8990, 0),
    (9, 30, Channel.COUNTER, Fulfilment.COUNTER, S.COMPLETED, 2460, 0),
    (10, 2, Channel.MINI_SHOP, Fulfilment.PICKUP, S.COMPLETED, 5170, 0),
    (10, 25, Channel.H5, Fulfilment.PICKUP, S.COMPLETED, 2590, 0),
    (10, 48, Channel.COUNTER, Fulfilment.COUNTER, S.COMPLETED, 15800, 0),
    (11, 10, Channel.PARTNER, Fulfilment.DELIVERY, S.DELIVERED, 12900, 0),
    (11, 35, Channel.MINI_SHOP, Fulfilment.DELIVERY, S.SHIPPED, 6380, 1290),
    (12, 5, Channel.COUNTER, Fulfilment.COUNTER, S.COMPLETED, 4250, 0),
    (12, 20, Channel.COUNTER, Fulfilment.COUNTER, S.COMPLETED, 990, 0),
    (12, 44, Channel.MINI_SHOP, Fulfilment.PICKUP, S.COMPLETED, 7760, 0),
    (13, 15, Channel.H5, Fulfilment.DELIVERY, S.SHIPPED, 9900, 0),
    (14, 2, Channel.COUNTER, Fulfilment.COUNTER, S.COMPLETED, 3380, 0),
    (15, 30, Channel.MINI_SHOP, Fulfilment.PICKUP, S.CANCELLED, 4590, 4590),
    (16, 8, Channel.COUNTER, Fulfilment.COUNTER, S.COMPLETED, 6120, 0),
    (17, 5, Channel.MINI_SHOP, Fulfilment.DELIVERY, S.PAID, 11880, 0),
    (17, 40, Channel.COUNTER, Fulfilment.COUNTER, S.COMPLETED, 8870, 0),
    (18, 2, Channel.MINI_SHOP, Fulfilment.PICKUP, S.READY_FOR_PICKUP, 3990, 0),
    (18, 15, Channel.COUNTER, Fulfilment.COUNTER, S.COMPLETED, 12450, 0),
    (18, 33, Channel.H5, Fulfilment.PICKUP, S.PAID, 2990, 0),
    (18, 50, Channel.PARTNER, Fulfilment.DELIVERY, S.PAID, 15900, 0),
    (19, 5, Channel.MINI_SHOP, Fulfilment.DELIVERY, S.PAID, 5880, 0),
    (19, 20, Channel.COUNTER, Fulfilment.COUNTER, S.COMPLETED, 2280, 0),
]


def seed(store, other, now: datetime) -> dict:
    today = now.date()
    orders = []

    def add(paid_at, channel, fulfilment, status, total, refunded=0):
        orders.append(
            Order(
                number=f"{paid_at:%y%m%d}9{len(orders):09d}",
                channel=channel,
                fulfilment=fulfilment,
                store=store,
                status=status,
                client_reference=f"shot-{len(orders)}",
                subtotal_fen=total,
                total_fen=total,
                paid_fen=total,
                refunded_fen=refunded,
                paid_at=paid_at,
            )
        )

    for hour, minute, channel, fulfilment, status, total, refunded in TODAY:
        paid_at = datetime.combine(today, time(hour, minute), tzinfo=SH)
        add(paid_at, channel, fulfilment, status, total, refunded)
    # The 29 days before: busier at weekends, a few orders an hour.
    for back in range(1, 30):
        day = today - timedelta(days=back)
        busy = 14 + (6 if day.weekday() >= 5 else 0) + (back * 7) % 5
        for n in range(busy):
            channel, fulfilment = [
                (Channel.COUNTER, Fulfilment.COUNTER),
                (Channel.MINI_SHOP, Fulfilment.DELIVERY),
                (Channel.MINI_SHOP, Fulfilment.PICKUP),
                (Channel.H5, Fulfilment.PICKUP),
                (Channel.PARTNER, Fulfilment.DELIVERY),
            ][n % 5]
            paid_at = datetime.combine(day, time(8 + n % 13, (n * 17) % 60), tzinfo=SH)
            add(paid_at, channel, fulfilment, S.COMPLETED, 990 + (n * 1373 + back * 311) % 12000)
    Order.objects.bulk_create(orders)
    # The partner channel's delivery at 18:50 went to a logistics partner: not the store's to
    # ship.
    routed = Order.objects.get(number=orders[21].number)
    OrderEvent.objects.create(order=routed, kind="order.routed", actor_kind=ActorKind.SYSTEM)
    factories.OrderFactory(store=other, status=S.PAID, paid_fen=1000, paid_at=now)

    # Stock, and what sold of it over the velocity window (one ledger row each).
    for code, name, on_hand, safety, pack, sold in (
        ("RICE-5KG", "五常大米 5kg", 2, 6, 4, 14),
        ("OIL-5L", "鲁花花生油 5L", 1, 4, 6, 0),
        ("MILK-1L", "光明鲜牛奶 1L", 3, 12, 12, 84),
        ("EGG-10", "土鸡蛋 10枚", 40, 10, 10, 28),
    ):
        product = factories.ProductFactory(code=f"P-{code}", name=name)
        sku = factories.SKUFactory(code=code, product=product)
        item = factories.StockItemFactory(
            store=store, sku=sku, on_hand=on_hand, safety_stock=safety, pack_size=pack
        )
        if sold:
            StockMovement.objects.create(
                stock_item=item,
                quantity=-sold,
                on_hand_after=on_hand,
                reason=StockMovement.Reason.COUNTER_SALE,
                idempotency_key=f"shot-{code}",
            )

    paid = Order.objects.get(number=orders[16].number)
    event = OutboxEvent.objects.create(
        event_type="order.paid",
        aggregate_type="order",
        aggregate_id=str(paid.pk),
        payload={"order": {"number": paid.number}},
    )
    OutboxDelivery.objects.create(
        event=event,
        subscriber="wechat_sync",
        state="failed",
        attempts=3,
        attempt_limit=12,
        last_error="HTTP 503: upstream busy",
    )
    OutboxDelivery.objects.create(
        event=event,
        subscriber="partner_pushes",
        state="dead",
        attempts=12,
        attempt_limit=12,
        last_error="HTTP 400: unknown store code",
    )
    net = sum(total - refunded for *_, total, refunded in TODAY)
    return {"net_fen": net, "orders": len(TODAY)}


def open_dashboard(browser, url: str, *, username: str, language: str) -> dict:
    """Sign in through the admin's form, open the dashboard, check what the charts drew."""
    context = browser.new_context(
        viewport={"width": 1366, "height": 900},
        locale="zh-CN" if language == "zh-hans" else "en-US",
        extra_http_headers={"Accept-Language": "zh-CN" if language == "zh-hans" else "en"},
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    requested, errors = [], []
    page.on("request", lambda request: requested.append(request.url))

    page.goto(f"{url}/admin/login/?next=/console/SH001/dashboard/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pass-for-tests-1")
    page.click("input[type=submit]")
    page.wait_for_url("**/console/SH001/dashboard/")
    # The dashboard once more, listening for script errors and failed loads from the start
    # (the admin's sign-in page asks for a favicon the site does not have).
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("response", lambda response: response.status >= 400 and errors.append(response.url))
    page.goto(f"{url}/console/SH001/dashboard/")
    page.wait_for_function(
        "['chart-hourly', 'chart-channels', 'chart-daily'].every(id => Chart.getChart(id))"
    )
    drawn = page.evaluate(
        """() => ({
            hourly: Chart.getChart('chart-hourly').data.datasets[0].data,
            channels: Chart.getChart('chart-channels').data.labels,
            channelNet: Chart.getChart('chart-channels').data.datasets[0].data,
            days: Chart.getChart('chart-daily').data.labels.length,
            today: Chart.getChart('chart-daily').data.datasets[0].data.at(-1),
            net: document.querySelector('#card-net .value').textContent,
            toShip: document.querySelector('#card-to-ship .value').textContent,
            painted: ['chart-hourly', 'chart-channels', 'chart-daily'].map(id => {
                const canvas = document.getElementById(id);
                return canvas.width > 0 && canvas.toDataURL().length > 5000;
            }),
        })"""
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if language == "zh-hans" else "-en"
    page.screenshot(path=str(ARTIFACTS / f"console-dashboard{suffix}.png"), full_page=True)
    context.close()
    return {"drawn": drawn, "requested": requested, "errors": errors}


def test_a_manager_sees_her_stores_day_drawn_in_charts(
    live_server, live_settings, evening, store_a, store_b
):
    manager = factories.StaffRoleFactory(role="store_manager", store=store_a).user
    expected = seed(store_a, store_b, evening)

    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        chinese = open_dashboard(
            browser, live_server.url, username=manager.username, language="zh-hans"
        )
        english = open_dashboard(browser, live_server.url, username=manager.username, language="en")
        browser.close()

    for seen in (chinese, english):
        assert seen["errors"] == []
        # Everything came from the live server: no CDN.
        assert [url for url in seen["requested"] if not url.startswith(live_server.url)] == []
        drawn = seen["drawn"]
        assert drawn["painted"] == [True, True, True]
        assert round(sum(drawn["hourly"]) * 100) == expected["net_fen"]
        assert round(drawn["today"] * 100) == expected["net_fen"]
        assert drawn["days"] == 30
        assert drawn["net"] == f"¥{expected['net_fen'] / 100:,.2f}".replace(",", "")
        # The two mini-shop deliveries paid at 17:05 and 19:05; the routed one is not.
        assert drawn["toShip"] == "2"
    assert english["drawn"]["channels"] == ["WeChat mini-shop", "H5 shop", "counter", "partner"]
    # Counter: the sum of today's counter sales, in yuan.
    counter = sum(t for _h, _m, c, _f, _s, t, _r in TODAY if c == Channel.COUNTER)
    assert round(english["drawn"]["channelNet"][2] * 100) == counter
    assert (ARTIFACTS / "console-dashboard.png").stat().st_size > 50_000
