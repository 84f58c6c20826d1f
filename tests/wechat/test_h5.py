"""The H5 shop's pages (wechat/h5) with Django's test client: login through the WeChat sandbox
over a real socket, store picker, catalogue, product, cart, checkout, orders, member code,
logout; refusals shown with their stable code and nothing changed; CSRF on every form."""

from datetime import time
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import Client
from django.urls import reverse

from inventory.models import StockItem
from members.models import Identity, Member
from members.services.identity import member_code_resolve
from orders.models import Channel, Fulfilment, Order, OrderStatus
from retail.models import Store
from tests import factories
from tests.wechat.conftest import LIN, RISKY, WANG
from wechat.h5.views import SESSION_TOKEN
from wechat.models import Address, Cart, CartLine, ShopperToken

pytestmark = pytest.mark.django_db


# --- a small shop ----------------------------------------------------------------------------


@pytest.fixture
def shop(db):
    """Two open stores near People's Square (the nearer one, SH002, delivers), a warehouse,
    two categories, three products with stock at both stores."""
    always = {"opens_at": time(0, 0), "closes_at": time(0, 0)}
    jingan = factories.StoreFactory(
        code="SH001",
        name="静安寺店",
        latitude=Decimal("31.224310"),
        longitude=Decimal("121.446020"),
        **always,
    )
    square = factories.StoreFactory(
        code="SH002",
        name="人民广场店",
        latitude=Decimal("31.233120"),
        longitude=Decimal("121.476930"),
        delivery_radius_m=5000,
        **always,
    )
    dairy = factories.CategoryFactory(code="DAIRY", name="乳品", sort_order=1)
    fruit = factories.CategoryFactory(code="FRUIT", name="水果", sort_order=2)
    milk = factories.SKUFactory(
        code="MILK-1L",
        price_fen=1290,
        product=factories.ProductFactory(code="P-MILK", name="鲜牛奶", category=dairy),
    )
    yogurt = factories.SKUFactory(
        code="YOG-4",
        price_fen=990,
        product=factories.ProductFactory(code="P-YOG", name="原味酸奶", category=dairy),
    )
    apple = factories.SKUFactory(
        code="APPLE-6",
        price_fen=2500,
        product=factories.ProductFactory(code="P-APPLE", name="红富士苹果", category=fruit),
    )
    for store in (jingan, square):
        factories.StockItemFactory(store=store, sku=milk, on_hand=10)
        factories.StockItemFactory(store=store, sku=yogurt, on_hand=5)
    factories.StockItemFactory(store=jingan, sku=apple, on_hand=3)
    return {
        "jingan": jingan,
        "square": square,
        "dairy": dairy,
        "fruit": fruit,
        "milk": milk,
        "yogurt": yogurt,
        "apple": apple,
    }


def sandbox_pick(wechat_url: str, openid: str) -> str:
    """What the shopper's browser does on the sandbox's page: pick a user; the sandbox answers
    with a redirect to our callback carrying the code and the state."""
    parts = urlsplit(wechat_url)
    pick = f"{parts.scheme}://{parts.netloc}/sandbox/login/pick?{parts.query}&openid={openid}"
    answer = requests.get(pick, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def log_in(client: Client, openid: str = LIN, *, next_url: str = "") -> Member:
    page = client.get(reverse("shop:login"), {"next": next_url} if next_url else {})
    back = sandbox_pick(page.context["wechat_url"], openid)
    landed = client.get(back)
    assert landed.status_code == 302
    return Identity.objects.get(openid=openid).member


@pytest.fixture
def shopper(client, shop):
    """Lin, logged in, shopping at SH002."""
    member = log_in(client)
    client.post(reverse("shop:stores"), {"store": shop["square"].pk})
    return member


@pytest.fixture
def in_english(client, settings):
    """Pages in English: the language cookie the language menu sets."""
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def put_in_cart(client, sku, quantity):
    response = client.post(reverse("shop:cart"), {"sku": sku.pk, "quantity": quantity})
    assert response.status_code == 302


def stock(store, sku) -> tuple[int, int]:
    item = StockItem.objects.get(store=store, sku=sku)
    return item.on_hand, item.reserved


# --- login -----------------------------------------------------------------------------------


def test_pages_send_a_shopper_who_is_not_logged_in_to_the_login_page(client):
    for name in ("shop:stores", "shop:catalogue", "shop:cart", "shop:checkout", "shop:orders"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"] == f"/shop/login/?next=%2Fshop%2F{name[5:]}%2F"
    assert client.get(reverse("shop:index"))["Location"] == reverse("shop:login")


def test_the_login_page_links_to_the_sandbox_with_our_callback_and_a_state(client, sandbox_server):
    response = client.get(reverse("shop:login"))

    link = urlsplit(response.context["wechat_url"])
    query = parse_qs(link.query)
    assert f"{link.scheme}://{link.netloc}/" == sandbox_server.url
    assert link.path == "/sandbox/login"
    assert query["redirect"] == ["http://testserver/shop/login/callback/"]
    assert query["state"] == [client.session["shop_login_state"]]
    assert len(query["state"][0]) >= 20
    assert 'id="wechat-login"' in response.content.decode()


def test_the_public_sandbox_url_setting_is_what_the_browser_is_sent_to(client, settings):
    settings.WECHAT_SANDBOX_PUBLIC_URL = "https://wechat-sandbox.example.com/"

    response = client.get(reverse("shop:login"))

    assert response.context["wechat_url"].startswith(
        "https://wechat-sandbox.example.com/sandbox/login?redirect="
    )


def test_against_the_real_wechat_the_page_says_login_needs_the_sandbox(client, settings):
    settings.WECHAT_API_BASE_URL = "https://api.weixin.qq.com/"

    response = client.get(reverse("shop:login"))

    assert response.context["wechat_url"] is None
    assert 'id="wechat-login"' not in response.content.decode()


def test_picking_a_sandbox_user_logs_in_as_her_member_and_returns_where_she_was_going(
    client, shop, wx
):
    page = client.get(reverse("shop:login"), {"next": "/shop/orders/"})
    back = sandbox_pick(page.context["wechat_url"], LIN)
    landed = client.get(back)

    member = Identity.objects.get(openid=LIN).member
    assert landed.status_code == 302
    assert landed["Location"] == "/shop/orders/"
    token = ShopperToken.objects.get()
    assert token.member == member
    assert client.session[SESSION_TOKEN] != ""
    assert [call["path"] for call in wx.calls()] == ["/sns/jscode2session"]
    assert client.get(reverse("shop:orders")).status_code == 200


def test_a_next_address_on_another_site_is_ignored(client, shop):
    page = client.get(reverse("shop:login"), {"next": "https://evil.example.com/"})
    landed = client.get(sandbox_pick(page.context["wechat_url"], LIN))

    assert landed["Location"] == "/shop/"


def test_a_callback_with_a_state_not_ours_logs_no_one_in(client, shop, wx):
    client.get(reverse("shop:login"))

    response = client.get(
        reverse("shop:login-callback"), {"code": wx.js_code(LIN), "state": "forged"}, follow=True
    )

    assert ShopperToken.objects.count() == 0
    assert Member.objects.count() == 0
    assert any("login_state_mismatch" in message for message in messages_of(response))
    assert SESSION_TOKEN not in client.session


def test_a_user_wechat_refuses_is_told_why_with_the_code(client, shop):
    page = client.get(reverse("shop:login"))

    response = client.get(sandbox_pick(page.context["wechat_url"], RISKY), follow=True)

    assert response.redirect_chain[-1][0] == reverse("shop:login")
    [message] = messages_of(response)
    assert "wechat_user_refused" in message
    assert Member.objects.count() == 0
    assert ShopperToken.objects.count() == 0


def test_a_used_code_is_refused_with_wechats_reason(client, shop, wx):
    page = client.get(reverse("shop:login"))
    back = sandbox_pick(page.context["wechat_url"], LIN)
    client.get(back)
    client.post(reverse("shop:logout"))
    state = client.get(reverse("shop:login")).context["wechat_url"].split("state=")[1]

    again = urlsplit(back)._replace(query=f"code={parse_qs(urlsplit(back).query)['code'][0]}")
    response = client.get(f"{again.path}?{again.query}&state={state}", follow=True)

    [message] = messages_of(response)
    assert "wechat_code_used" in message
    assert ShopperToken.objects.count() == 0


def test_login_is_rate_limited_per_wechat_user(client, shop, settings):
    settings.SHOP_THROTTLE_RATES = {**settings.SHOP_THROTTLE_RATES, "shop_login_shopper": "1/min"}
    log_in(client)
    client.post(reverse("shop:logout"))

    page = client.get(reverse("shop:login"))
    response = client.get(sandbox_pick(page.context["wechat_url"], LIN), follow=True)

    assert any("throttled" in message for message in messages_of(response))
    assert ShopperToken.objects.count() == 0


def test_logging_out_ends_the_token_and_the_session(client, shop):
    log_in(client)

    response = client.post(reverse("shop:logout"))

    assert response["Location"] == reverse("shop:login")
    assert ShopperToken.objects.count() == 0
    assert client.get(reverse("shop:orders")).status_code == 302


def test_an_expired_token_sends_the_shopper_back_to_login(client, shop):
    log_in(client)
    ShopperToken.objects.update(expires_at="2000-01-01T00:00:00Z")

    response = client.get(reverse("shop:orders"), follow=True)

    assert response.redirect_chain[-1][0] == "/shop/login/?next=%2Fshop%2Forders%2F"
    assert any("token_expired" in message for message in messages_of(response))


# --- store picker ----------------------------------------------------------------------------


def test_the_store_picker_lists_the_nearest_store_first_with_its_distance(client, shop):
    log_in(client)

    response = client.get(reverse("shop:stores"), {"lat": "31.2330", "lng": "121.4770"})

    cards = response.context["cards"]
    assert [card.store.code for card in cards] == ["SH002", "SH001"]
    assert cards[0].distance_m == 15
    assert cards[1].distance_m == 3100
    assert all(card.open_now for card in cards)
    assert response.context["located"] is True
    page = response.content.decode()
    assert page.index('data-store-code="SH002"') < page.index('data-store-code="SH001"')


def test_without_a_location_the_picker_starts_from_peoples_square(client, shop):
    log_in(client)

    response = client.get(reverse("shop:stores"))

    assert [card.store.code for card in response.context["cards"]] == ["SH002", "SH001"]
    assert response.context["located"] is False
    assert "data-locate" in response.content.decode()


def test_a_closed_store_is_listed_as_closed(client, shop):
    Store.objects.filter(pk=shop["jingan"].pk).update(opens_at=time(3, 0), closes_at=time(3, 1))
    log_in(client)

    response = client.get(reverse("shop:stores"))

    assert [(c.store.code, c.open_now) for c in response.context["cards"]] == [
        ("SH002", True),
        ("SH001", False),
    ]


def test_choosing_a_store_makes_it_the_carts_store(client, shop):
    member = log_in(client)

    response = client.post(reverse("shop:stores"), {"store": shop["jingan"].pk})

    assert response["Location"] == reverse("shop:catalogue")
    assert Cart.objects.get(member=member).store == shop["jingan"]


def test_choosing_an_unknown_store_is_refused_and_changes_nothing(client, shop):
    member = log_in(client)
    client.post(reverse("shop:stores"), {"store": shop["jingan"].pk})

    response = client.post(reverse("shop:stores"), {"store": 999999}, follow=True)

    assert any("store_not_found" in message for message in messages_of(response))
    assert Cart.objects.get(member=member).store == shop["jingan"]


# --- catalogue and product -------------------------------------------------------------------


def test_the_catalogue_needs_a_store_first(client, shop):
    log_in(client)

    response = client.get(reverse("shop:catalogue"))

    assert response.status_code == 302
    assert response["Location"] == "/shop/stores/?next=%2Fshop%2Fcatalogue%2F"


def test_the_catalogue_lists_products_with_what_the_chosen_store_holds(client, shopper):
    response = client.get(reverse("shop:catalogue"))

    rows = [
        (r["product"].code, r["sku"].price_fen, r["available"]) for r in response.context["rows"]
    ]
    assert rows == [("P-APPLE", 2500, 0), ("P-MILK", 1290, 10), ("P-YOG", 990, 5)]
    page = response.content.decode()
    assert "人民广场店" in page
    assert "¥12.90" in page


def test_a_products_picture_shows_the_first_character_after_its_brand(client, shopper, shop):
    factories.SKUFactory(
        product=factories.ProductFactory(name="光明 鲜牛奶", brand="光明", category=shop["dairy"])
    )

    page = client.get(reverse("shop:catalogue"), {"q": "光明"}).content.decode()

    assert '<span class="thumb" aria-hidden="true">鲜</span>' in page


def test_the_catalogue_filters_by_category_search_and_stock(client, shopper, shop):
    by_category = client.get(reverse("shop:catalogue"), {"category": shop["dairy"].pk})
    by_text = client.get(reverse("shop:catalogue"), {"q": "酸奶"})
    in_stock = client.get(reverse("shop:catalogue"), {"in_stock": "on"})

    def codes(response):
        return [row["product"].code for row in response.context["rows"]]

    assert codes(by_category) == ["P-MILK", "P-YOG"]
    assert codes(by_text) == ["P-YOG"]
    assert codes(in_stock) == ["P-MILK", "P-YOG"]


def test_the_product_page_shows_each_sku_with_its_stock_and_cart_quantity(client, shopper, shop):
    put_in_cart(client, shop["milk"], 2)

    response = client.get(reverse("shop:product", args=[shop["milk"].product_id]))

    [row] = response.context["skus"]
    assert (row["sku"], row["available"], row["in_cart"]) == (shop["milk"], 10, 2)
    assert "鲜牛奶" in response.content.decode()


def test_an_unknown_product_is_a_404(client, shopper):
    assert client.get(reverse("shop:product", args=[999999])).status_code == 404


# --- cart ------------------------------------------------------------------------------------


def test_adding_from_the_product_page_puts_the_line_in_the_cart(client, shopper, shop):
    product_url = reverse("shop:product", args=[shop["milk"].product_id])

    response = client.post(
        reverse("shop:cart"), {"sku": shop["milk"].pk, "quantity": 3, "next": product_url}
    )

    assert response["Location"] == product_url
    line = CartLine.objects.get(cart__member=shopper)
    assert (line.sku, line.quantity) == (shop["milk"], 3)


def test_the_cart_shows_its_lines_and_their_price(client, shopper, shop):
    put_in_cart(client, shop["milk"], 2)
    put_in_cart(client, shop["yogurt"], 1)

    response = client.get(reverse("shop:cart"))

    summary = response.context["summary"]
    assert [(i.line.sku.code, i.line.quantity, i.available) for i in summary.items] == [
        ("MILK-1L", 2, 10),
        ("YOG-4", 1, 5),
    ]
    assert summary.quote.subtotal_fen == 2 * 1290 + 990
    assert "¥35.70" in response.content.decode()
    assert response.context["short"] is False


def test_changing_and_removing_cart_lines(client, shopper, shop):
    put_in_cart(client, shop["milk"], 2)
    put_in_cart(client, shop["yogurt"], 1)

    put_in_cart(client, shop["milk"], 5)
    put_in_cart(client, shop["yogurt"], 0)

    assert list(CartLine.objects.values_list("sku__code", "quantity")) == [("MILK-1L", 5)]


def test_a_quantity_over_the_limit_is_refused_and_the_line_stays(client, shopper, shop):
    put_in_cart(client, shop["milk"], 2)

    response = client.post(
        reverse("shop:cart"), {"sku": shop["milk"].pk, "quantity": 1000}, follow=True
    )

    assert any("invalid_quantity" in message for message in messages_of(response))
    assert list(CartLine.objects.values_list("quantity", flat=True)) == [2]


def test_more_than_the_store_holds_is_flagged_in_the_cart(client, shopper, shop):
    put_in_cart(client, shop["yogurt"], 6)

    response = client.get(reverse("shop:cart"))

    assert response.context["short"] is True
    assert "warn" in response.content.decode()


# --- checkout --------------------------------------------------------------------------------


def checkout_form(client, **data):
    page = client.get(reverse("shop:checkout"))
    assert page.status_code == 200
    reference = page.context["form"]["client_reference"].value()
    return {"fulfilment": "pickup", "points": 0, "client_reference": reference, **data}


def test_checkout_shows_the_price_breakdown_for_pickup(client, shopper, shop):
    put_in_cart(client, shop["milk"], 2)

    response = client.get(reverse("shop:checkout"))

    preview = response.context["preview"]
    assert (preview.store, preview.fulfilment) == (shop["square"], Fulfilment.PICKUP)
    assert (preview.quote.subtotal_fen, preview.quote.total_fen) == (2580, 2580)
    assert response.context["form"]["client_reference"].value().startswith("h5-")
    assert '<td class="price big" id="total">¥25.80</td>' in response.content.decode()


def test_each_checkout_page_load_has_its_own_client_reference(client, shopper, shop):
    put_in_cart(client, shop["milk"], 1)

    first = client.get(reverse("shop:checkout")).context["form"]["client_reference"].value()
    second = client.get(reverse("shop:checkout")).context["form"]["client_reference"].value()

    assert first != second


def test_placing_a_pickup_order_holds_the_stock_and_empties_the_cart(client, shopper, shop):
    put_in_cart(client, shop["milk"], 2)
    put_in_cart(client, shop["yogurt"], 1)
    data = checkout_form(client, action="place")

    response = client.post(reverse("shop:checkout"), data)

    order = Order.objects.get()
    assert response["Location"] == reverse("shop:order", args=[order.number])
    assert (order.channel, order.fulfilment, order.store) == (
        Channel.H5,
        Fulfilment.PICKUP,
        shop["square"],
    )
    assert (order.member, order.status, order.total_fen) == (
        shopper,
        OrderStatus.PENDING_PAYMENT,
        2 * 1290 + 990,
    )
    assert order.client_reference == data["client_reference"]
    assert len(order.pickup_code) == 6
    assert stock(shop["square"], shop["milk"]) == (10, 2)
    assert stock(shop["square"], shop["yogurt"]) == (5, 1)
    assert CartLine.objects.count() == 0


def test_a_second_submit_of_the_same_checkout_page_makes_one_order(client, shopper, shop):
    put_in_cart(client, shop["milk"], 2)
    data = checkout_form(client, action="place")

    first = client.post(reverse("shop:checkout"), data)
    second = client.post(reverse("shop:checkout"), data)

    order = Order.objects.get()
    assert first["Location"] == second["Location"] == reverse("shop:order", args=[order.number])
    assert stock(shop["square"], shop["milk"]) == (10, 2)


def test_the_preview_action_places_nothing(client, shopper, shop):
    put_in_cart(client, shop["milk"], 2)

    response = client.post(reverse("shop:checkout"), checkout_form(client, action="preview"))

    assert response.status_code == 200
    assert response.context["preview"].quote.total_fen == 2580
    assert Order.objects.count() == 0
    assert stock(shop["square"], shop["milk"]) == (10, 0)


def test_more_points_than_owned_are_refused_with_the_code_and_nothing_is_held(
    client, shopper, shop
):
    put_in_cart(client, shop["milk"], 2)

    response = client.post(
        reverse("shop:checkout"), checkout_form(client, points=500, action="place")
    )

    assert response.status_code == 200
    assert any("points_exceed_balance" in message for message in messages_of(response))
    assert Order.objects.count() == 0
    assert stock(shop["square"], shop["milk"]) == (10, 0)
    assert CartLine.objects.count() == 1


def test_an_unknown_coupon_is_refused_with_the_code_and_nothing_is_held(client, shopper, shop):
    put_in_cart(client, shop["milk"], 2)
    data = checkout_form(client, action="place")

    response = client.post(reverse("shop:checkout"), {**data, "coupon_code": "NOPE"})

    assert any("coupon_not_found" in message for message in messages_of(response))
    assert Order.objects.count() == 0
    assert stock(shop["square"], shop["milk"]) == (10, 0)


def test_insufficient_stock_cannot_be_placed(client, shopper, shop):
    put_in_cart(client, shop["yogurt"], 6)

    response = client.post(reverse("shop:checkout"), checkout_form(client, action="place"))

    assert any("insufficient_stock" in message for message in messages_of(response))
    assert Order.objects.count() == 0
    assert stock(shop["square"], shop["yogurt"]) == (5, 0)
    assert 'id="place-order" type="submit" name="action" value="place" disabled' in (
        response.content.decode()
    )


def test_checkout_is_rate_limited_per_shopper(client, shopper, shop, settings):
    settings.SHOP_THROTTLE_RATES = {
        **settings.SHOP_THROTTLE_RATES,
        "shop_checkout_shopper": "1/min",
    }
    put_in_cart(client, shop["milk"], 1)
    client.post(reverse("shop:checkout"), checkout_form(client, action="place"))
    put_in_cart(client, shop["milk"], 1)

    response = client.post(reverse("shop:checkout"), checkout_form(client, action="place"))

    assert any("throttled" in message for message in messages_of(response))
    assert Order.objects.count() == 1


def test_delivery_to_a_new_address(client, shopper, shop):
    put_in_cart(client, shop["milk"], 2)
    new = client.post(
        reverse("shop:address-new"),
        {
            "name": "林小美",
            "mobile": "13800138001",
            "province": "上海市",
            "city": "上海市",
            "district": "黄浦区",
            "detail": "南京东路100号",
        },
    )
    address = Address.objects.get(member=shopper)
    assert new["Location"] == f"/shop/checkout/?fulfilment=delivery&address={address.pk}"
    page = client.get(new["Location"])
    assert page.context["preview"].fulfilment == Fulfilment.DELIVERY
    reference = page.context["form"]["client_reference"].value()

    client.post(
        reverse("shop:checkout"),
        {
            "fulfilment": "delivery",
            "address": address.pk,
            "points": 0,
            "client_reference": reference,
            "action": "place",
        },
    )

    order = Order.objects.get()
    assert (order.fulfilment, order.address["detail"], order.pickup_code) == (
        Fulfilment.DELIVERY,
        "南京东路100号",
        "",
    )
    assert order.total_fen == 2580 + order.shipping_fen


def test_an_invalid_address_is_shown_again_with_its_errors(client, shopper):
    response = client.post(reverse("shop:address-new"), {"name": "林", "mobile": "123"})

    assert response.status_code == 200
    assert set(response.context["form"].errors) == {
        "mobile",
        "province",
        "city",
        "district",
        "detail",
    }
    assert Address.objects.count() == 0


# --- orders ----------------------------------------------------------------------------------


@pytest.fixture
def placed(client, shopper, shop):
    put_in_cart(client, shop["milk"], 2)
    client.post(reverse("shop:checkout"), checkout_form(client, action="place"))
    return Order.objects.get()


def test_the_order_list_shows_the_shoppers_orders(client, placed):
    response = client.get(reverse("shop:orders"))

    assert [order.number for order in response.context["page"]] == [placed.number]
    assert f'data-order-number="{placed.number}"' in response.content.decode()


def test_the_order_page_shows_lines_breakdown_and_timeline(client, placed, in_english):
    response = client.get(reverse("shop:order", args=[placed.number]))

    assert response.context["order"] == placed
    assert [(e["what"], e["why"]) for e in response.context["timeline"]] == [
        ("Order placed", ""),
    ]
    assert response.context["can_cancel"] is True
    page = response.content.decode()
    assert "Your pickup code appears here once the order is paid." in page


def test_a_paid_pickup_order_shows_its_pickup_code(client, placed):
    Order.objects.filter(pk=placed.pk).update(status=OrderStatus.PAID)

    response = client.get(reverse("shop:order", args=[placed.number]))

    assert response.context["pickup_code"] == placed.pickup_code
    assert f'<p class="pickup-code" id="pickup-code">{placed.pickup_code}</p>' in (
        response.content.decode()
    )


def test_another_shoppers_order_is_a_404(client, placed, shop):
    other = Client()
    log_in(other, WANG)

    assert other.get(reverse("shop:order", args=[placed.number])).status_code == 404
    assert (
        other.post(reverse("shop:order", args=[placed.number]), {"action": "cancel"}).status_code
        == 404
    )
    assert Order.objects.get().status == OrderStatus.PENDING_PAYMENT


def test_cancelling_an_unpaid_order_frees_its_stock(client, placed, shop, in_english):
    response = client.post(reverse("shop:order", args=[placed.number]), {"action": "cancel"})

    assert response["Location"] == reverse("shop:order", args=[placed.number])
    placed.refresh_from_db()
    assert placed.status == OrderStatus.CANCELLED
    assert stock(shop["square"], shop["milk"]) == (10, 0)
    timeline = client.get(response["Location"]).context["timeline"]
    assert [(e["what"], e["why"]) for e in timeline] == [
        ("Order placed", ""),
        ("cancelled", "cancelled by the shopper"),
    ]


def test_cancelling_a_paid_order_is_refused_with_the_code(client, placed):
    Order.objects.filter(pk=placed.pk).update(status=OrderStatus.PAID)

    response = client.post(
        reverse("shop:order", args=[placed.number]), {"action": "cancel"}, follow=True
    )

    assert any("order_paid" in message for message in messages_of(response))
    assert Order.objects.get().status == OrderStatus.PAID


def test_paying_sends_the_shopper_to_the_sandboxs_cashier_and_back(
    client, placed, settings, sandbox_server
):
    from urllib.parse import parse_qs, urlsplit

    from orders.models import Payment
    from wechat.sandbox import pay_v3

    for name, value in pay_v3.platform_settings(sandbox_server.url.rstrip("/")).items():
        setattr(settings, name, value)
    settings.WECHAT_PAY_VERSION = "v3"
    settings.WECHAT_PAY_NOTIFY_BASE_URL = "http://testserver"

    response = client.post(reverse("shop:order", args=[placed.number]), {"action": "pay"})

    payment = Payment.objects.get(order=placed)
    cashier = urlsplit(response["Location"])
    query = {key: values[0] for key, values in parse_qs(cashier.query).items()}
    assert response.status_code == 302
    assert f"{cashier.scheme}://{cashier.netloc}/" == sandbox_server.url
    assert cashier.path == f"/sandbox/pay/v3/{payment.out_trade_no}"
    assert query["package"] == f"prepay_id={payment.provider_data['prepay_id']}"
    assert query["redirect"] == f"http://testserver/shop/orders/{placed.number}/"
    assert (payment.status, Order.objects.get(pk=placed.pk).status) == (
        "pending",
        "pending_payment",
    )


def test_against_the_real_wechat_paying_says_to_use_the_mini_program(
    client, placed, settings, in_english
):
    settings.WECHAT_API_BASE_URL = "https://api.weixin.qq.com/"
    settings.WECHAT_SANDBOX_PUBLIC_URL = ""
    from wechat.h5.views import sandbox_cashier_url

    assert sandbox_cashier_url(out_trade_no="P1", parameters={}, back="http://x/") is None


# --- member code -----------------------------------------------------------------------------


def test_the_member_page_shows_a_member_code_that_resolves_to_her(client, shopper):
    response = client.get(reverse("shop:member"))

    code = response.context["code"]
    assert member_code_resolve(code=code) == shopper
    page = response.content.decode()
    assert f'<code class="code" id="member-code">{code}</code>' in page
    assert 'data-refresh-seconds="60"' in page
    assert len(response.context["pattern"]) == 21 * 21


# --- the rest --------------------------------------------------------------------------------


def test_every_form_needs_the_csrf_token(shop):
    strict = Client(enforce_csrf_checks=True)
    log_in(strict)

    for name in ("shop:stores", "shop:cart", "shop:checkout", "shop:logout", "shop:address-new"):
        assert strict.post(reverse(name), {}).status_code == 403, name
    assert Cart.objects.count() == 0
    assert ShopperToken.objects.count() == 1


def test_pages_follow_the_language_cookie(client, shopper, settings):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    english_page = client.get(reverse("shop:cart")).content.decode()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    chinese_page = client.get(reverse("shop:cart")).content.decode()

    assert "Your cart is empty." in english_page
    assert "购物车是空的" in chinese_page


def test_a_catalogue_page_costs_the_same_queries_for_3_products_as_for_20(
    client, shopper, shop, django_assert_num_queries
):
    # Session, token, cart header, categories, count, products, their SKUs, stock at the
    # store, stock in the warehouses.
    with django_assert_num_queries(9):
        client.get(reverse("shop:catalogue"))
    for n in range(25):
        sku = factories.SKUFactory(product=factories.ProductFactory(category=shop["fruit"]))
        factories.StockItemFactory(store=shop["square"], sku=sku, on_hand=n)

    with django_assert_num_queries(9):
        response = client.get(reverse("shop:catalogue"))

    assert len(response.context["rows"]) == 20
