"""The H5 shop in headless Chromium (Playwright) against a live server and the WeChat sandbox:
a shopper logs in by picking a sandbox user, takes the nearest store to where the browser says
she is, puts two items in the cart and checks out for pickup; a staff member of that store
then finds the order in the admin. Screenshots of each step are kept in var/test-artifacts/.

Skipped, with the reason, when Chromium or Playwright is not installed (.ci/run installs both).
"""

import shutil
from datetime import time
from decimal import Decimal
from pathlib import Path

import pytest

from orders.models import Channel, Fulfilment, Order, OrderStatus
from tests import factories
from tests.live import ARTIFACTS, CHROMIUM, launch
from tests.wechat.conftest import LIN

# Where the browser says the shopper is (WGS-84, as browsers report): by People's Square.
BROWSER_LOCATION = {"latitude": 31.2304, "longitude": 121.4737}
PHONE = {"width": 390, "height": 844}

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright==1.65.2)"
)
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
        reason=f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)",
    ),
]


@pytest.fixture
def shop(db):
    """Three stores around People's Square, the nearest (SH002) with two products in stock;
    its store manager."""
    always = {"opens_at": time(0, 0), "closes_at": time(0, 0)}
    factories.StoreFactory(
        code="SH001",
        name="静安寺店",
        latitude=Decimal("31.224310"),
        longitude=Decimal("121.446020"),
        **always,
    )
    square = factories.StoreFactory(
        code="SH002",
        name="人民广场店",
        district="黄浦区",
        address="西藏中路336号",
        latitude=Decimal("31.233120"),
        longitude=Decimal("121.476930"),
        **always,
    )
    factories.StoreFactory(
        code="SH003",
        name="陆家嘴店",
        district="浦东新区",
        address="东方路71号",
        latitude=Decimal("31.237640"),
        longitude=Decimal("121.505180"),
        **always,
    )
    dairy = factories.CategoryFactory(code="DAIRY", name="乳品烘焙", sort_order=1)
    fruit = factories.CategoryFactory(code="FRUIT", name="水果", sort_order=2)
    milk = factories.SKUFactory(
        code="MILK-1L",
        price_fen=1290,
        attributes={"规格": "1L"},
        product=factories.ProductFactory(
            code="P-MILK", name="光明鲜牛奶", brand="光明", category=dairy
        ),
    )
    apple = factories.SKUFactory(
        code="APPLE-6",
        price_fen=2590,
        attributes={"规格": "6个装"},
        product=factories.ProductFactory(
            code="P-APPLE", name="烟台红富士苹果", brand="鲜果坊", category=fruit
        ),
    )
    factories.StockItemFactory(store=square, sku=milk, on_hand=20)
    factories.StockItemFactory(store=square, sku=apple, on_hand=8)
    manager = factories.StaffRoleFactory(role="store_manager", store=square).user
    return {"square": square, "milk": milk, "apple": apple, "manager": manager}


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"h5-{name}.png"), full_page=True)


def shop_for_pickup(browser, url: str) -> str:
    """The shopper's side; returns the order number its page shows."""
    context = browser.new_context(
        viewport=PHONE,
        locale="zh-CN",
        geolocation=BROWSER_LOCATION,
        permissions=["geolocation"],
    )
    context.set_default_timeout(10_000)
    page = context.new_page()

    # Open the shop and log in by picking a WeChat user in the sandbox.
    page.goto(f"{url}/shop/")
    shot(page, "01-login")
    page.click("#wechat-login")
    page.wait_for_url("**/sandbox/login?**")
    shot(page, "02-sandbox-pick-user")
    page.click("a.user:has-text('林小美')")

    # Back in the shop with no store yet: the picker, nearest first from where the browser
    # says she is, turned from WGS-84 into GCJ-02 (the stores' datum) by the page.
    page.wait_for_url("**/shop/stores/?*lat=31.228458&lng=121.478223")
    codes = page.locator(".store-card").evaluate_all(
        "cards => cards.map(card => card.dataset.storeCode)"
    )
    assert codes == ["SH002", "SH003", "SH001"]
    assert "533" in page.inner_text(".store-card[data-store-code='SH002'] .distance")
    shot(page, "03-stores")
    page.locator(".store-card[data-store-code='SH002'] button").click()

    # Two items into the cart from their product pages.
    page.wait_for_url("**/shop/catalogue/")
    shot(page, "04-catalogue")
    for code, quantity in (("P-MILK", "2"), ("P-APPLE", "1")):
        page.click(f".product-row[data-product-code='{code}']")
        page.fill("input[name=quantity]", quantity)
        page.click("button.add-to-cart")
        page.wait_for_url("**/shop/products/*/")
        if code == "P-MILK":
            shot(page, "05-product")
        page.click(".tabs a[href='/shop/catalogue/']")
    page.click(".tabs a[href='/shop/cart/']")
    assert page.locator(".cart-line").count() == 2
    shot(page, "06-cart")

    # Check out for pickup.
    page.click("#to-checkout")
    page.wait_for_url("**/shop/checkout/")
    assert page.locator("input[name=fulfilment][value=pickup]").is_checked()
    assert page.inner_text("#total") == "¥51.70"
    shot(page, "07-checkout")
    page.click("#place-order")
    page.wait_for_url("**/shop/orders/*/")
    shot(page, "08-order")
    number = page.url.rstrip("/").rsplit("/", 1)[1]
    assert "待付款" in page.inner_text("#order-status")

    # Her member code for the counter.
    page.click(".tabs a[href='/shop/me/']")
    assert page.inner_text("#member-code") != ""
    shot(page, "09-member-code")
    context.close()
    return number


def find_in_admin(browser, url: str, *, username: str, number: str) -> str:
    """The staff side: the order list row of that order number."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(f"{url}/admin/login/?next=/admin/orders/order/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pass-for-tests-1")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/orders/order/")
    row = page.locator("#result_list tbody tr", has_text=number)
    assert row.count() == 1
    shot(page, "10-admin-orders")
    text = row.inner_text()
    context.close()
    return text


def test_a_shopper_orders_for_pickup_and_the_store_sees_it_in_the_admin(
    live_server, live_settings, shop
):
    # Playwright's sync API runs an event loop in this thread, where Django refuses database
    # calls: the database is checked once the browser is gone.
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        number = shop_for_pickup(browser, live_server.url)
        admin_row = find_in_admin(
            browser, live_server.url, username=shop["manager"].username, number=number
        )
        browser.close()

    order = Order.objects.get()
    assert order.number == number
    assert (order.channel, order.fulfilment, order.status, order.store) == (
        Channel.H5,
        Fulfilment.PICKUP,
        OrderStatus.PENDING_PAYMENT,
        shop["square"],
    )
    assert order.total_fen == 2 * 1290 + 2590
    assert list(order.lines.values_list("sku_code", "quantity")) == [
        ("MILK-1L", 2),
        ("APPLE-6", 1),
    ]
    assert order.member.identities.get().openid == LIN
    assert "人民广场店" in admin_row
