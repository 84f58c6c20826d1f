"""The console's counter sale (POS): the price preview, paying cash, paying by WeChat payment
code against the WeChat Pay sandbox over a real socket, the receipt, one sale per submission,
and nothing written when a sale is refused or its payment fails.

The basket at store A (SH001) in most tests: 2 × 东北大米 (39.90) and 1 × 花生油 (59.00) =
138.80, for 王芳, a silver member (5%): tier 6.94 (3.99 + 2.95), then her coupon "spend 100 save
10" on the 131.86 left, split 5.75 / 4.25 by what each line costs, then 500 of her 1000 points
(5.00, at most half of the 121.86 left), split 2.87 / 2.13: 116.86 to pay. Rice 67.19, oil
49.67. She earns floor(11686 × 1 × 120 / 10000) = 140 points.
"""

import json
import re
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from inventory.models import Reservation, StockItem, StockMovement
from members.models import Coupon, Member, PointsEntry
from members.services.identity import member_code_issue
from orders.console.pos_forms import MEMBER_TOKEN_SECONDS, member_token
from orders.models import Channel, Fulfilment, Order, OrderEvent, Payment
from orders.pricing import BasketLine
from orders.services import checkout_place
from retail.access import ROLE_PERMISSIONS, Role
from tests import factories
from tests.console.conftest import POS_OIL_BARCODE, POS_RICE_BARCODE
from wechat.pay.services import payments_close_unpaid

pytestmark = pytest.mark.django_db

S = Order.Status
REF = "5f0c1a4e-7d7b-4a53-9d3e-2b1f6c7a9e01"
POS = "/console/SH001/pos/"
QUOTE = "/console/SH001/pos/quote/"
CASH = "/console/SH001/pos/cash/"
WECHAT = "/console/SH001/wechat/pos/code/"
# The basket of the module docstring, as the till sends it: a barcode and a typed SKU code.
BASKET = [{"code": POS_RICE_BARCODE, "quantity": 2}, {"code": "oil-5l", "quantity": 1}]


@pytest.fixture(autouse=True)
def _english(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture
def till(client, clerk_a):
    client.force_login(clerk_a)
    return client


def sale(**fields) -> dict:
    """The fields the till's forms post (the page's script fills them from its basket)."""
    data = {
        "client_reference": REF,
        "basket": json.dumps(fields.pop("basket", BASKET)),
        "member": "",
        "coupon_code": "",
        "points": "0",
        "expected_total": "",
    }
    data.update(fields)
    return data


def member_sale(member, store, **fields) -> dict:
    defaults = {
        "member": member_token(member, store),
        "coupon_code": "POS10OFF",
        "points": "500",
        "expected_total": "11686",
    }
    return sale(**{**defaults, **fields})


def stock(sku, store) -> tuple[int, int]:
    item = StockItem.objects.get(sku=sku, store=store)
    return item.on_hand, item.reserved


def written() -> dict:
    """What a refused sale must leave as it was."""
    return {
        "orders": Order.objects.count(),
        "payments": Payment.objects.count(),
        "reservations": list(Reservation.objects.values_list("line_key", "status")),
        "movements": StockMovement.objects.count(),
        "stock": list(StockItem.objects.order_by("pk").values_list("on_hand", "reserved")),
        "points": list(PointsEntry.objects.values_list("reason", "points")),
        "coupons": list(Coupon.objects.order_by("code").values_list("code", "status")),
    }


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def followed(client, response):
    """The page a refused post sends the till back to, with its message."""
    assert response.status_code == 302, response.content
    return client.get(response["Location"])


def receipt_location(order: Order) -> str:
    return f"/console/SH001/pos/receipt/{order.number}/"


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def by_id(response, element_id: str) -> str:
    """The text of the element with this id on the page."""
    match = re.search(
        rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', response.content.decode(), re.S
    )
    assert match, f"no #{element_id}"
    return text(match.group(2))


# --- The page and the price preview ------------------------------------------------------------


def test_the_till_page(till, store_a, django_assert_num_queries):
    # Session, user, her roles, the store; the frame's stores.
    with django_assert_num_queries(5):
        response = till.get(POS)

    assert response.status_code == 200
    page = response.content.decode()
    assert "<h1>Counter sale</h1>" in page
    assert 'data-quote-url="/console/SH001/pos/quote/"' in page
    assert 'action="/console/SH001/pos/cash/"' in page
    assert 'action="/console/SH001/wechat/pos/code/"' in page
    assert page.count('name="client_reference"') == 2
    assert '<script src="/static/console/pos.js"></script>' in page
    assert json.loads(by_id(response, "pos-texts"))["change"] == "Change"


def test_a_store_without_counter_sales_refuses_clearly(till, store_a, pos_goods):
    store_a.offers_counter_sales = False
    store_a.save(update_fields=["offers_counter_sales"])
    before = written()

    page = till.get(POS)
    preview = till.post(QUOTE, sale())
    paid = followed(till, till.post(CASH, sale(tendered="200")))

    assert page.status_code == 200
    assert 'id="pos"' not in page.content.decode()
    assert "静安寺店 does not offer counter sales." in text(page.content.decode())
    assert (preview.status_code, preview.json()["error"]["code"]) == (409, "store_does_not_serve")
    assert messages_of(paid) == ["静安寺店 does not offer counter sales."]
    assert written() == before


def test_the_preview_prices_a_members_basket(
    till, store_a, pos_goods, pos_member, django_assert_num_queries
):
    code = member_code_issue(member=pos_member)
    fields = sale(member_code=code, coupon_code="POS10OFF", points="500")

    # Session, user, roles, store; SKUs by barcode or code; the member; the pricing (SKUs,
    # promotions, coupon, coupon scope); stock; her coupons.
    with django_assert_num_queries(12):
        response = till.post(QUOTE, fields)

    assert response.status_code == 200, response.content
    answer = response.json()
    member = answer.pop("member")
    assert member.pop("token")
    assert member == {
        "name": "王芳",
        "mobile": "139****5678",
        "tier": "银卡",
        "tier_discount_percent": 5,
        "points_balance": 1000,
        "coupons": [
            {
                "code": "POS10OFF",
                "name": "满100减10",
                "kind": "spend X save Y",
                "until": Coupon.objects.get(code="POS10OFF").valid_until.date().isoformat(),
            }
        ],
    }
    assert answer == {
        "lines": [
            {
                "code": POS_RICE_BARCODE,
                "sku": "RICE-5KG",
                "barcode": POS_RICE_BARCODE,
                "name": "东北大米",
                "spec": "5kg",
                "quantity": 2,
                "unit": "¥39.90",
                "discount": "¥12.61",
                "total": "¥67.19",
                "short": None,
            },
            {
                "code": "oil-5l",
                "sku": "OIL-5L",
                "barcode": POS_OIL_BARCODE,
                "name": "花生油",
                "spec": "5L",
                "quantity": 1,
                "unit": "¥59.00",
                "discount": "¥9.33",
                "total": "¥49.67",
                "short": None,
            },
        ],
        "subtotal": "¥138.80",
        "discounts": [
            {"label": "Member discount", "amount": "¥6.94"},
            {"label": "Coupon", "amount": "¥10.00"},
            {"label": "Points", "amount": "¥5.00"},
        ],
        "total": "¥116.86",
        "total_fen": 11686,
        "points_redeemed": 500,
        "coupon_code": "POS10OFF",
        "warnings": [],
    }
    assert Order.objects.count() == 0


def test_the_preview_names_an_unknown_barcode_and_writes_nothing(till, store_a, pos_goods):
    before = written()

    response = till.post(QUOTE, sale(basket=[*BASKET, {"code": "6900000000000", "quantity": 1}]))

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "unknown_barcode",
            "message": "Nothing is sold under the barcode or code “6900000000000”.",
            "fields": {"code": ["6900000000000"]},
        }
    }
    assert written() == before


def test_the_preview_warns_of_short_stock_and_drops_a_coupon_that_does_not_apply(
    till, store_a, pos_goods, pos_member
):
    answer = till.post(
        QUOTE,
        sale(
            basket=[{"code": "RICE-5KG", "quantity": 21}],
            member=member_token(pos_member, store_a),
            coupon_code="web5off",
        ),
    ).json()

    assert answer["warnings"] == ["This coupon is only for online."]
    assert answer["coupon_code"] == ""
    assert [(line["quantity"], line["short"], line["total"]) for line in answer["lines"]] == [
        (21, 20, "¥796.01")  # 837.90 less 5%: 41.89
    ]


def test_a_member_scan_is_kept_half_an_hour_and_a_stale_member_code_refused(
    till, store_a, pos_goods, pos_member
):
    token = member_token(pos_member, store_a)
    code = member_code_issue(member=pos_member)

    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        stale_code = till.post(QUOTE, sale(member_code=code))
        kept = till.post(QUOTE, sale(member=token))
    with time_machine.travel(timezone.now() + timedelta(seconds=MEMBER_TOKEN_SECONDS + 1)):
        dropped = till.post(QUOTE, sale(member=token))
    elsewhere = till.post(QUOTE, sale(member=member_token(pos_member, factories.StoreFactory())))

    assert (stale_code.status_code, stale_code.json()["error"]["code"]) == (
        400,
        "member_code_expired",
    )
    assert (kept.json()["member"]["name"], kept.json()["total"]) == ("王芳", "¥131.86")
    assert (dropped.json()["member"], dropped.json()["total"]) == (None, "¥138.80")
    assert dropped.json()["warnings"] == [
        "The member was scanned too long ago: scan her member code again."
    ]
    assert elsewhere.json()["warnings"] == ["This is not a valid member code."]


# --- Paying cash -------------------------------------------------------------------------------


def test_a_member_pays_cash_and_gets_her_receipt(
    till, clerk_a, store_a, pos_goods, pos_member, django_assert_num_queries
):
    rice, oil = pos_goods

    response = till.post(CASH, member_sale(pos_member, store_a, tendered="120"))

    order = Order.objects.get()
    assert (response.status_code, response["Location"]) == (302, receipt_location(order))
    assert (order.channel, order.fulfilment, order.status, order.store) == (
        Channel.COUNTER,
        Fulfilment.COUNTER,
        S.COMPLETED,
        store_a,
    )
    assert (order.member, order.client_reference, order.created_by) == (pos_member, REF, clerk_a)
    assert (order.subtotal_fen, order.discount_fen, order.total_fen, order.paid_fen) == (
        13880,
        2194,
        11686,
        11686,
    )
    assert order.pricing == {
        "promotion_fen": 0,
        "tier_fen": 694,
        "coupon_fen": 1000,
        "points_fen": 500,
        "shipping_discount_fen": 0,
    }
    assert (order.coupon_code, order.points_redeemed) == ("POS10OFF", 500)
    assert list(
        order.lines.order_by("pk").values_list(
            "sku_code", "quantity", "unit_price_fen", "discount_fen", "total_fen"
        )
    ) == [("RICE-5KG", 2, 3990, 1261, 6719), ("OIL-5L", 1, 5900, 933, 4967)]
    payment = Payment.objects.get()
    assert (payment.provider, payment.status, payment.amount_fen, payment.raw_payload) == (
        "cash",
        "succeeded",
        11686,
        {"tendered_fen": 12000},
    )
    assert (stock(rice, store_a), stock(oil, store_a)) == ((18, 0), (19, 0))
    assert list(
        StockMovement.objects.filter(reason="counter_sale")
        .order_by("pk")
        .values_list("stock_item__sku__code", "quantity", "on_hand_after", "reference", "actor")
    ) == [
        ("RICE-5KG", -2, 18, order.number, clerk_a.pk),
        ("OIL-5L", -1, 19, order.number, clerk_a.pk),
    ]
    pos_member.refresh_from_db()
    assert pos_member.points_balance == 1000 - 500 + 140
    assert Coupon.objects.get(code="POS10OFF").status == "used"
    assert list(
        OrderEvent.objects.filter(order=order).order_by("pk").values_list("kind", "actor_kind")
    ) == [("order.created", "staff"), ("order.paid", "staff"), ("order.completed", "staff")]

    # Session, user, roles, store, frame's stores; the order with member and tier, its lines
    # and its payment; the points she earned.
    with django_assert_num_queries(9):
        receipt = till.get(response["Location"])

    assert receipt.status_code == 200
    rows = re.findall(r'<tr class="receipt-line">(.*?)</tr>', receipt.content.decode(), re.S)
    assert [text(row) for row in rows] == [
        "东北大米 5kg RICE-5KG ¥39.90 2 -¥12.61 ¥67.19",
        "花生油 5L OIL-5L ¥59.00 1 -¥9.33 ¥49.67",
    ]
    assert by_id(receipt, "receipt-number") == order.number
    assert by_id(receipt, "receipt-status") == "completed"
    assert text(
        re.search(r'<dl class="receipt-sums">(.*?)</dl>', receipt.content.decode(), re.S)[1]
    ) == (
        "Subtotal ¥138.80 Member discount -¥6.94 Coupon -¥10.00 Points -¥5.00 "
        "Coupon code POS10OFF Points used 500 Total ¥116.86 Cash received ¥120.00 Change ¥3.14"
    )
    assert by_id(receipt, "receipt-member") == (
        "Member: 王芳 139****5678 · 银卡 140 points earned · balance 640"
    )
    assert 'data-client-reference="' + REF + '"' in receipt.content.decode()


def test_an_anonymous_sale_in_cash_with_exact_money(till, store_a, pos_goods):
    rice, _oil = pos_goods

    response = till.post(CASH, sale(basket=[{"code": "rice-5kg", "quantity": 1}], tendered="39.9"))

    order = Order.objects.get()
    assert (order.status, order.member, order.total_fen) == (S.COMPLETED, None, 3990)
    receipt = till.get(response["Location"])
    assert by_id(receipt, "receipt-change") == "¥0.00"
    assert by_id(receipt, "receipt-member") == "No member"
    assert stock(rice, store_a) == (19, 0)


def test_the_same_submission_twice_is_one_sale(till, store_a, pos_goods, pos_member):
    rice, oil = pos_goods
    fields = member_sale(pos_member, store_a, tendered="120")

    first = till.post(CASH, fields)
    # The double click's copy; by then her member scan and the preview would not matter.
    second = till.post(CASH, {**fields, "member": "", "expected_total": "1"})

    order = Order.objects.get()
    assert first["Location"] == second["Location"] == receipt_location(order)
    assert Payment.objects.count() == 1
    assert StockMovement.objects.filter(reason="counter_sale").count() == 2
    assert (stock(rice, store_a), stock(oil, store_a)) == ((18, 0), (19, 0))
    assert OrderEvent.objects.filter(kind="order.completed").count() == 1
    pos_member.refresh_from_db()
    assert pos_member.points_balance == 640


def test_an_id_already_used_at_another_store_is_refused(client, store_a, store_b, pos_goods):
    """A clerk of both stores: the till at B cannot reach A's sale through its id."""
    clerk = factories.StaffRoleFactory(role="clerk", store=store_a).user
    factories.StaffRoleFactory(role="clerk", store=store_b, user=clerk)
    client.force_login(clerk)
    client.post(CASH, sale(tendered="200"))
    before = written()

    response = client.post("/console/SH002/pos/cash/", sale(tendered="200"))

    assert response["Location"] == f"/console/SH002/pos/?retry={REF}"
    assert messages_of(client.get(response["Location"])) == [
        "This sale could not be submitted: reload the page and try again."
    ]
    assert written() == before


def test_an_unknown_barcode_refuses_the_sale_and_writes_nothing(till, store_a, pos_goods):
    before = written()

    response = till.post(
        CASH, sale(basket=[*BASKET, {"code": "6900000000000", "quantity": 1}], tendered="500")
    )

    assert response["Location"] == f"{POS}?retry={REF}"
    assert messages_of(till.get(response["Location"])) == [
        "Nothing is sold under the barcode or code “6900000000000”."
    ]
    assert written() == before


def test_more_than_the_shelf_holds_is_refused_and_changes_nothing(till, store_a, pos_goods):
    rice, _oil = pos_goods
    # 3 of the 20 bags are held for an online order: the counter may sell 17.
    checkout_place(
        channel=Channel.MINI_SHOP,
        store=store_a,
        fulfilment=Fulfilment.PICKUP,
        lines=[BasketLine(rice.pk, 3)],
        client_reference="online-1",
        member=factories.MemberFactory(),
    )
    before = written()

    response = till.post(
        CASH, sale(basket=[{"code": POS_RICE_BARCODE, "quantity": 18}], tendered="1000")
    )

    assert messages_of(followed(till, response)) == ["Not enough “东北大米” in stock: 17 left."]
    assert written() == before
    assert stock(rice, store_a) == (20, 3)


def test_short_cash_is_no_sale(till, store_a, pos_goods, pos_member):
    before = written()

    response = till.post(CASH, member_sale(pos_member, store_a, tendered="100"))

    assert response["Location"] == f"{POS}?retry={REF}"
    assert messages_of(till.get(response["Location"])) == [
        "¥100.00 received is ¥16.86 short of the total ¥116.86."
    ]
    assert written() == before
    assert (stock(pos_goods[0], store_a), stock(pos_goods[1], store_a)) == ((20, 0), (20, 0))
    assert Member.objects.get(pk=pos_member.pk).points_balance == 1000


def test_short_cash_for_a_sale_an_earlier_copy_left_unpaid_cancels_it(
    till, clerk_a, store_a, pos_goods, pos_member
):
    """A copy of this submission placed the sale and died before the cash was taken: the
    resend finds it, the cash is short, and the sale is cancelled: stock, coupon and points
    go back."""
    rice, oil = pos_goods
    order = checkout_place(
        channel=Channel.COUNTER,
        store=store_a,
        fulfilment=Fulfilment.COUNTER,
        lines=[BasketLine(rice.pk, 2), BasketLine(oil.pk, 1)],
        client_reference=REF,
        member=pos_member,
        coupon_code="POS10OFF",
        points_to_redeem=500,
        actor=clerk_a,
    )
    assert (stock(rice, store_a), stock(oil, store_a)) == ((20, 2), (20, 1))

    response = till.post(CASH, member_sale(pos_member, store_a, tendered="100"))

    assert messages_of(followed(till, response)) == [
        "¥100.00 received is ¥16.86 short of the total ¥116.86."
    ]
    order.refresh_from_db()
    assert order.status == S.CANCELLED
    assert order.events.get(kind="order.cancelled").note == "cash: cash_short"
    assert (stock(rice, store_a), stock(oil, store_a)) == ((20, 0), (20, 0))
    assert set(Reservation.objects.values_list("status", flat=True)) == {"released"}
    assert Payment.objects.count() == 0
    assert StockMovement.objects.filter(reason="counter_sale").count() == 0
    assert Coupon.objects.get(code="POS10OFF").status == "available"
    assert Member.objects.get(pk=pos_member.pk).points_balance == 1000

    again = till.post(CASH, member_sale(pos_member, store_a, tendered="120"))

    assert again["Location"] == f"{POS}?retry={REF}"
    assert messages_of(till.get(again["Location"])) == [
        "This attempt was cancelled and charged nothing: submit the sale again."
    ]
    assert Order.objects.count() == 1


def test_a_total_changed_since_the_preview_is_shown_not_charged(
    till, store_a, pos_goods, pos_member
):
    before = written()

    response = till.post(
        CASH, member_sale(pos_member, store_a, tendered="200", expected_total="11000")
    )

    assert messages_of(followed(till, response)) == [
        "The total is now ¥116.86, not ¥110.00: check the basket and ask again."
    ]
    assert written() == before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tendered": "12.345"}, "Enter the cash received in yuan, e.g. 100 or 52.50."),
        ({"tendered": "120", "basket": "[]"}, "The basket is empty: scan the first item."),
        (
            {"tendered": "120", "basket": [{"code": "RICE-5KG", "quantity": 0}]},
            "Quantity must be between 1 and 999.",
        ),
        (
            {"tendered": "120", "client_reference": "no"},
            "This sale could not be submitted: reload the page and try again.",
        ),
    ],
)
def test_a_malformed_sale_is_refused(till, store_a, pos_goods, fields, message):
    before = written()
    if isinstance(fields.get("basket"), list):
        fields = {**fields, "basket": json.dumps(fields["basket"])}
    data = sale()
    data.update(fields)

    response = till.post(CASH, data)

    assert messages_of(followed(till, response)) == [message]
    assert written() == before


# --- Who may sell ------------------------------------------------------------------------------


def test_a_clerk_of_another_store_gets_404_and_changes_nothing(client, store_a, store_b, pos_goods):
    client.force_login(factories.StaffRoleFactory(role="clerk", store=store_b).user)
    before = written()

    answers = [
        client.get(POS).status_code,
        client.post(QUOTE, sale()).status_code,
        client.post(CASH, sale(tendered="500")).status_code,
        client.post(WECHAT, sale(auth_code="134567890123456789")).status_code,
    ]

    assert answers == [404, 404, 404, 404]
    assert written() == before


def test_a_role_without_the_permission_gets_403_and_changes_nothing(
    till, monkeypatch, store_a, pos_goods
):
    monkeypatch.setitem(
        ROLE_PERMISSIONS, Role.CLERK, ROLE_PERMISSIONS[Role.CLERK] - {"orders.add_order"}
    )
    before = written()

    answers = [
        till.get(POS).status_code,
        till.post(QUOTE, sale()).status_code,
        till.post(CASH, sale(tendered="500")).status_code,
        till.post(WECHAT, sale(auth_code="134567890123456789")).status_code,
    ]

    assert answers == [403, 403, 403, 403]
    assert written() == before


def test_signed_out_is_sent_to_sign_in_and_get_is_not_a_sale(client, clerk_a, pos_goods):
    signed_out = client.post(CASH, sale(tendered="500"))
    client.force_login(clerk_a)
    fetched = client.get(CASH)

    assert (signed_out.status_code, signed_out["Location"]) == (
        302,
        "/admin/login/?next=/console/SH001/pos/cash/",
    )
    assert fetched.status_code == 405
    assert Order.objects.count() == 0


def test_a_receipt_of_another_store_is_a_404(till, store_a, store_b, pos_goods):
    till.post(CASH, sale(tendered="200"))
    number = Order.objects.get().number
    other = factories.StaffRoleFactory(role="clerk", store=store_b).user
    till.force_login(other)

    assert till.get(f"/console/SH002/pos/receipt/{number}/").status_code == 404
    assert till.get(f"/console/SH001/pos/receipt/{number}/").status_code == 404


# --- Paying by WeChat payment code, against the sandbox ----------------------------------------


def test_a_payment_code_that_pays_completes_the_sale(
    till, pos_wechat_pay, store_a, pos_goods, pos_member
):
    rice, oil = pos_goods
    code = pos_wechat_pay.code(outcome="paid")

    response = till.post(WECHAT, member_sale(pos_member, store_a, auth_code=code))

    order = Order.objects.get()
    assert (response.status_code, response["Location"]) == (302, receipt_location(order))
    assert (order.status, order.paid_fen) == (S.COMPLETED, 11686)
    payment = Payment.objects.get()
    assert (payment.provider, payment.status, payment.amount_fen) == (
        "wechat_pay",
        "succeeded",
        11686,
    )
    trade = pos_wechat_pay.trade(payment.out_trade_no)
    assert (trade["trade_state"], trade["transaction_id"]) == ("SUCCESS", payment.transaction_id)
    assert (stock(rice, store_a), stock(oil, store_a)) == ((18, 0), (19, 0))
    assert StockMovement.objects.filter(reason="counter_sale").count() == 2
    receipt = till.get(response["Location"])
    assert "Paid by WeChat Pay ¥116.86" in text(receipt.content.decode())
    assert 'id="receipt-change"' not in receipt.content.decode()
    assert by_id(receipt, "receipt-points") == "140 points earned · balance 640"

    # The same submission again (a resend): the receipt, and WeChat is not asked again.
    again = till.post(WECHAT, member_sale(pos_member, store_a, auth_code=code))

    assert again["Location"] == receipt_location(order)
    assert (Order.objects.count(), Payment.objects.count(), pos_wechat_pay.codepays()) == (1, 1, 1)
    assert StockMovement.objects.filter(reason="counter_sale").count() == 2


@pytest.mark.parametrize(
    ("spec", "message", "trade_state"),
    [
        (
            {"outcome": "not_enough"},
            "WeChat Pay refused the payment code: 用户账号余额不足",
            "PAYERROR",
        ),
        (
            {"outcome": "userpaying"},
            "The shopper did not confirm the payment in time; it was cancelled.",
            "REVOKED",
        ),
    ],
    ids=["refused", "not-confirmed"],
)
def test_a_payment_code_that_does_not_pay_leaves_no_sale(
    till, pos_wechat_pay, store_a, pos_goods, pos_member, spec, message, trade_state
):
    rice, oil = pos_goods
    code = pos_wechat_pay.code(**spec)

    response = till.post(WECHAT, member_sale(pos_member, store_a, auth_code=code))

    assert response["Location"] == f"{POS}?retry={REF}"
    assert messages_of(till.get(response["Location"])) == [
        f"{message} The sale was cancelled and nothing was charged: scan a new code or take cash."
    ]
    order = Order.objects.get()
    assert order.status == S.CANCELLED
    payment = Payment.objects.get()
    assert payment.status == "closed"
    assert pos_wechat_pay.trade(payment.out_trade_no)["trade_state"] == trade_state
    assert (stock(rice, store_a), stock(oil, store_a)) == ((20, 0), (20, 0))
    assert set(Reservation.objects.values_list("status", flat=True)) == {"released"}
    assert StockMovement.objects.filter(reason="counter_sale").count() == 0
    assert Coupon.objects.get(code="POS10OFF").status == "available"
    assert Member.objects.get(pk=pos_member.pk).points_balance == 1000


def test_a_mistyped_payment_code_is_refused_before_anything_happens(
    till, pos_wechat_pay, store_a, pos_goods
):
    before = written()

    response = till.post(WECHAT, sale(auth_code="1234"))

    assert messages_of(followed(till, response)) == [
        "A WeChat payment code is 18 digits starting 10 to 15: scan it again."
    ]
    assert written() == before
    assert pos_wechat_pay.codepays() == 0


def test_wechat_pay_out_of_reach_cancels_the_sale_and_reconciliation_closes_the_trade(
    till, pos_wechat_pay, store_a, pos_goods
):
    """The charge gets no answer, nor does the reversal: the till cannot know whether she
    paid. The sale is cancelled (its stock stays on the shelf) and the clerk told that any
    money goes back; the payment waits for ``pay_close_unpaid``, which closes it."""
    rice, oil = pos_goods
    pos_wechat_pay.fault("/v3/pay/transactions/codepay", times=20)
    pos_wechat_pay.fault("/v3/pay/transactions/out-trade-no/{out_trade_no}/reverse", times=20)

    response = till.post(WECHAT, sale(auth_code=pos_wechat_pay.code(outcome="paid")))

    assert messages_of(followed(till, response)) == [
        "WeChat Pay cannot be reached just now; try again in a moment. The sale was cancelled; "
        "should the shopper have been charged, the money goes back to her by itself."
    ]
    assert Order.objects.get().status == S.CANCELLED
    assert (stock(rice, store_a), stock(oil, store_a)) == ((20, 0), (20, 0))
    assert Payment.objects.get().status == "pending"

    pos_wechat_pay.reset()
    assert payments_close_unpaid() == {"closed": 1}
    assert Payment.objects.get().status == "closed"
