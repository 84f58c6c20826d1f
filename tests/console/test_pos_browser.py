"""The till in headless Chromium (Playwright) against a live server: a clerk signs in, opens
the counter sale, scans two barcodes (typed, then Enter, as a scanner does), scans a member
code, applies her coupon and points, takes cash and sees the receipt with the change; the
database is checked afterwards. Screenshots of the basket and of the receipt are kept in
var/test-artifacts/.

Skipped, with the reason, when Chromium or Playwright is not installed (.ci/run installs both).
"""

import re
import shutil
from pathlib import Path

import pytest

from inventory.models import StockItem, StockMovement
from members.models import Coupon, Member
from members.services.identity import member_code_issue
from orders.models import Channel, Fulfilment, Order, Payment
from tests.console.conftest import POS_OIL_BARCODE, POS_RICE_BARCODE
from tests.live import ARTIFACTS, CHROMIUM, launch

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

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
    page.screenshot(path=str(ARTIFACTS / f"pos-{name}.png"), full_page=True)


def scan(page, code: str) -> None:
    """What a barcode scanner does: types the code, then Enter."""
    page.locator("#scan").press_sequentially(code)
    page.locator("#scan").press("Enter")


def sell(browser, url: str, *, username: str, member_code: str) -> dict:
    """The clerk's side; returns what the pages showed."""
    expect = sync_api.expect
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    seen: dict = {}

    page.goto(f"{url}/admin/login/?next=/console/SH001/pos/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pass-for-tests-1")
    page.click("input[type=submit]")
    page.wait_for_url("**/console/SH001/pos/")
    expect(page.locator("#scan")).to_be_focused()

    # Two bags of rice (quantity first, then the scan), one bottle of oil.
    page.fill("#scan-quantity", "2")
    scan(page, POS_RICE_BARCODE)
    expect(page.locator("#basket-lines tr")).to_have_count(1)
    scan(page, POS_OIL_BARCODE)
    expect(page.locator("#basket-lines tr")).to_have_count(2)
    expect(page.locator("#total")).to_have_text("¥138.80")

    # An unknown barcode: said clearly, the basket unchanged.
    scan(page, "6900000000000")
    expect(page.locator("#pos-error")).to_have_text(
        "Nothing is sold under the barcode or code “6900000000000”."
    )
    expect(page.locator("#basket-lines tr")).to_have_count(2)

    # Her member code: tier price, her coupon, her points.
    scan(page, member_code)
    expect(page.locator("#member-card")).to_be_visible()
    expect(page.locator("#pos-error")).to_be_hidden()
    expect(page.locator("#total")).to_have_text("¥131.86")
    seen["member"] = page.inner_text("#member-panel")
    page.select_option("#coupon", "POS10OFF")
    expect(page.locator("#total")).to_have_text("¥121.86")
    page.fill("#points", "500")
    page.locator("#points").press("Tab")
    expect(page.locator("#total")).to_have_text("¥116.86")
    page.fill("#tendered", "120")
    expect(page.locator("#change")).to_have_text("¥3.14")
    seen["lines"] = page.locator("#basket-lines tr").all_inner_texts()
    seen["totals"] = page.inner_text(".pos-totals")
    page.locator("#scan").focus()
    shot(page, "01-basket")

    page.click("#pay-cash")
    page.wait_for_url("**/console/SH001/pos/receipt/*/")
    seen["receipt_change"] = page.inner_text("#receipt-change")
    seen["receipt_member"] = page.inner_text("#receipt-member")
    seen["receipt"] = page.inner_text("#receipt")
    seen["basket_kept"] = page.evaluate("sessionStorage.getItem('console-pos:SH001')")
    shot(page, "02-receipt")

    # A new sale starts empty.
    page.click("#new-sale")
    page.wait_for_url("**/console/SH001/pos/")
    expect(page.locator("#basket-empty")).to_be_visible()
    seen["new_sale_lines"] = page.locator("#basket-lines tr").count()
    context.close()
    return seen


def test_a_clerk_sells_to_a_member_for_cash_in_the_browser(
    live_server, live_settings, clerk_a, store_a, pos_goods, pos_member
):
    member_code = member_code_issue(member=pos_member)  # good for a minute

    # Playwright's sync API runs an event loop in this thread, where Django refuses database
    # calls: the database is checked once the browser is gone.
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        seen = sell(browser, live_server.url, username=clerk_a.username, member_code=member_code)
        browser.close()

    assert "王芳" in seen["member"] and "139****5678" in seen["member"]
    assert "银卡 −5%" in seen["member"]
    assert [" ".join(line.split()) for line in seen["lines"]] == [
        f"东北大米 5kg {POS_RICE_BARCODE} · RICE-5KG ¥39.90 -¥12.61 ¥67.19 ×",
        f"花生油 5L {POS_OIL_BARCODE} · OIL-5L ¥59.00 -¥9.33 ¥49.67 ×",
    ]
    assert " ".join(seen["totals"].split()) == (
        "Subtotal ¥138.80 Member discount -¥6.94 Coupon -¥10.00 Points -¥5.00 To pay ¥116.86"
    )
    assert seen["receipt_change"] == "¥3.14"
    assert " ".join(seen["receipt_member"].split()) == (
        "Member: 王芳 139****5678 · 银卡 140 points earned · balance 640"
    )
    assert seen["basket_kept"] is None
    assert seen["new_sale_lines"] == 0

    order = Order.objects.get()
    assert order.number in seen["receipt"]
    assert UUID.match(order.client_reference)
    assert (order.channel, order.fulfilment, order.status, order.member) == (
        Channel.COUNTER,
        Fulfilment.COUNTER,
        Order.Status.COMPLETED,
        pos_member,
    )
    assert (order.subtotal_fen, order.discount_fen, order.total_fen, order.paid_fen) == (
        13880,
        2194,
        11686,
        11686,
    )
    assert (order.created_by, order.coupon_code, order.points_redeemed) == (
        clerk_a,
        "POS10OFF",
        500,
    )
    payment = Payment.objects.get()
    assert (payment.provider, payment.status, payment.amount_fen, payment.raw_payload) == (
        "cash",
        "succeeded",
        11686,
        {"tendered_fen": 12000},
    )
    assert list(
        StockMovement.objects.filter(reason="counter_sale")
        .order_by("pk")
        .values_list("stock_item__sku__code", "quantity", "on_hand_after", "reference")
    ) == [("RICE-5KG", -2, 18, order.number), ("OIL-5L", -1, 19, order.number)]
    assert list(
        StockItem.objects.filter(store=store_a)
        .order_by("sku__code")
        .values_list("sku__code", "on_hand", "reserved")
    ) == [("OIL-5L", 19, 0), ("RICE-5KG", 18, 0)]
    assert Member.objects.get(pk=pos_member.pk).points_balance == 640
    assert Coupon.objects.get(code="POS10OFF").status == "used"
