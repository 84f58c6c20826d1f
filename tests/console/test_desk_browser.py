"""The pickup and ship-from-store desks in headless Chromium (Playwright) against a live server,
as a clerk: she types a shopper's pickup code, checks the order the page shows and hands it
over; then she opens the ship-from-store queue and ships an order with a tracking number. The
database is checked afterwards. Screenshots of each step are kept in var/test-artifacts/
(desk-*.png).

Skipped, with the reason, when Chromium or Playwright is not installed (.ci/run installs both).
"""

import shutil
from pathlib import Path

import pytest

from inventory.models import StockItem, StockMovement
from orders.models import Order, OrderStatus, Shipment
from retail.models import OutboxEvent
from tests.live import ARTIFACTS, CHROMIUM, launch

DESK = {"width": 1280, "height": 800}

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


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"desk-{name}.png"), full_page=True)


def stock(store, sku) -> tuple[int, int]:
    item = StockItem.objects.get(store=store, sku=sku)
    return item.on_hand, item.reserved


def sign_in(page, url: str, username: str, next_path: str) -> None:
    page.goto(f"{url}/admin/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", "pass-for-tests-1")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_path}")


def hand_over(page, url: str, *, code: str, number: str) -> dict:
    """Type the code, check the order the page shows, hand it over."""
    page.fill("#id_code", code)
    page.click("#check-order")
    page.wait_for_selector("#pickup-order")
    seen = {
        "order": page.get_attribute("#pickup-order", "data-order"),
        "status": page.get_attribute("#pickup-status", "class"),
        "member": page.inner_text("#pickup-member"),
        "lines": page.locator("#pickup-lines tbody tr").evaluate_all(
            "rows => rows.map(row => [...row.cells].map(cell => cell.innerText.trim()))"
        ),
    }
    shot(page, "01-pickup-check")
    page.click("#handover")
    page.wait_for_url("**/console/SH001/pickups/")
    seen["message"] = page.inner_text(".messages li.success")
    seen["still_listed"] = page.locator(f"tr[data-order='{number}']").count()
    shot(page, "02-pickup-handed-over")
    return seen


def ship(page, url: str, *, number: str, tracking: str) -> dict:
    """From the queue to the order's page, then the parcel with every line."""
    page.goto(f"{url}/console/SH001/fulfilment/")
    seen = {
        "queue": page.locator("#queue tbody tr").evaluate_all(
            "rows => rows.map(row => row.dataset.order)"
        )
    }
    shot(page, "03-fulfilment-queue")
    page.click("#tick-all")
    page.click("#pick-chosen")
    page.wait_for_url("**/fulfilment/pick-list/?*")
    seen["pick_list"] = page.locator("#pick-list tbody tr").evaluate_all(
        "rows => rows.map(row => [...row.cells].slice(0, 4).map(cell => cell.innerText.trim()))"
    )
    shot(page, "04-pick-list")
    page.goto(f"{url}/console/SH001/fulfilment/")
    page.click(f"#queue tr[data-order='{number}'] a")
    page.wait_for_selector("#ship-form")
    seen["ticked"] = page.locator("#order-lines input[name=lines]:checked").count()
    page.select_option("#id_carrier_code", "SF")
    page.fill("#id_tracking_number", tracking)
    shot(page, "05-pack-and-ship")
    page.click("#ship")
    page.wait_for_url("**/console/SH001/fulfilment/")
    seen["message"] = page.inner_text(".messages li.success")
    seen["queue_after"] = page.locator("#queue tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.order)"
    )
    shot(page, "06-shipped")
    return seen


def test_a_clerk_hands_over_a_pickup_by_code_and_ships_an_order(
    live_server, live_settings, desk_store, desk_goods, desk_place, clerk_a
):
    water, milk = desk_goods
    pickup = desk_place((water, 2), (milk, 1))
    desk_place((milk, 1))  # another pickup order, to prepare
    parcel = desk_place((water, 1), (milk, 2), fulfilment="delivery")
    later = desk_place((water, 4), fulfilment="delivery")
    water_before, milk_before = stock(desk_store, water), stock(desk_store, milk)

    # Playwright's sync API runs an event loop in this thread, where Django refuses database
    # calls: the database is checked once the browser is gone.
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(viewport=DESK, locale="zh-CN")
        context.set_default_timeout(10_000)
        page = context.new_page()
        sign_in(page, live_server.url, clerk_a.username, "/console/SH001/pickups/")
        handed = hand_over(page, live_server.url, code=pickup.pickup_code, number=pickup.number)
        shipped = ship(page, live_server.url, number=parcel.number, tracking="SF1400000001")
        context.close()
        browser.close()

    # What the clerk saw before handing over.
    assert handed["order"] == pickup.number
    assert handed["status"] == "badge paid"
    assert handed["member"] == "李娜 · 139****4321"
    assert handed["lines"] == [
        ["矿泉水 550ml", "WATER-550", "2", "¥4.00"],
        ["鲜牛奶 1L", "MILK-1L", "1", "¥12.50"],
    ]
    assert pickup.number in handed["message"]
    assert handed["still_listed"] == 0
    # The pickup in the database: completed by her, its goods gone from the shelf.
    pickup.refresh_from_db()
    assert pickup.status == OrderStatus.COMPLETED
    assert pickup.events.order_by("pk").last().actor == clerk_a
    assert sorted(
        StockMovement.objects.filter(reference=pickup.number).values_list(
            "stock_item__sku__code", "quantity", "reason"
        )
    ) == [("MILK-1L", -1, "online_fulfilment"), ("WATER-550", -2, "online_fulfilment")]
    assert OutboxEvent.objects.filter(
        event_type="order.completed", aggregate_id=str(pickup.pk)
    ).exists()

    # The queue, the pick list of both orders, the parcel.
    assert shipped["queue"] == [parcel.number, later.number]
    assert shipped["pick_list"] == [
        ["矿泉水 550ml", "WATER-550", "6901234567892", "5"],
        ["鲜牛奶 1L", "MILK-1L", "6909876543212", "2"],
    ]
    assert shipped["ticked"] == 2
    assert parcel.number in shipped["message"] and "SF1400000001" in shipped["message"]
    assert shipped["queue_after"] == [later.number]
    parcel.refresh_from_db()
    assert parcel.status == OrderStatus.SHIPPED
    shipment = Shipment.objects.get(order=parcel)
    assert (shipment.carrier_code, shipment.tracking_number, shipment.created_by) == (
        "SF",
        "SF1400000001",
        clerk_a,
    )
    assert sorted(shipment.lines.values_list("sku_code", "quantity")) == [
        ("MILK-1L", 2),
        ("WATER-550", 1),
    ]
    assert sorted(
        StockMovement.objects.filter(reference=parcel.number).values_list(
            "stock_item__sku__code", "quantity", "reason"
        )
    ) == [("MILK-1L", -2, "online_fulfilment"), ("WATER-550", -1, "online_fulfilment")]
    # Both orders' goods left: on hand and held went down together.
    assert stock(desk_store, water) == (water_before[0] - 3, water_before[1] - 3)
    assert stock(desk_store, milk) == (milk_before[0] - 3, milk_before[1] - 3)
    assert Order.objects.get(pk=later.pk).status == OrderStatus.PAID
