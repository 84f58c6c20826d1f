import pytest

# --- desk_: pickups and ship-from-store (tests/console/test_pickups.py, test_fulfilment.py,
# test_desk_browser.py) -----------------------------------------------------------------------

DESK_ADDRESS = {
    "name": "王小明",
    "mobile": "13912345678",
    "province": "上海市",
    "city": "上海市",
    "district": "静安区",
    "detail": "愚园路168号5楼",
}


@pytest.fixture
def desk_store(store_a):
    """Store A (SH001) offers pickup and ship-from-store."""
    store_a.offers_ship_from_store = True
    store_a.save(update_fields=["offers_ship_from_store"])
    return store_a


@pytest.fixture
def desk_goods(desk_store):
    """Water (2.00) and milk (12.50), 20 of each on hand at store A."""
    from inventory.services import StockLine, stock_receive
    from tests import factories

    water = factories.SKUFactory(
        code="WATER-550",
        barcode="6901234567892",
        price_fen=200,
        attributes={"规格": "550ml"},
        product__name="矿泉水",
    )
    milk = factories.SKUFactory(
        code="MILK-1L",
        barcode="6909876543212",
        price_fen=1250,
        attributes={"规格": "1L"},
        product__name="鲜牛奶",
    )
    stock_receive(
        store=desk_store,
        lines=[StockLine(water, 20), StockLine(milk, 20)],
        idempotency_key="desk-seed",
    )
    return water, milk


@pytest.fixture
def desk_member(db):
    from tests import factories

    return factories.MemberFactory(mobile="13987654321", name="李娜")


@pytest.fixture
def desk_place(desk_store, desk_member):
    """``desk_place((sku, qty), ..., fulfilment="pickup", paid=True, store=..., member=...)``:
    a mini-shop order placed and, unless ``paid=False``, paid in cash (confirmed at once)."""
    import itertools

    from orders.payments import payment_confirm, payment_start
    from orders.pricing import BasketLine
    from orders.services import checkout_place

    numbers = itertools.count(1)

    def _place(*lines, fulfilment="pickup", paid=True, store=None, member=None):
        order = checkout_place(
            channel="mini_shop",
            store=store or desk_store,
            fulfilment=fulfilment,
            lines=[BasketLine(sku.pk, quantity) for sku, quantity in lines],
            client_reference=f"desk-{next(numbers)}",
            member=member or desk_member,
            address=DESK_ADDRESS if fulfilment == "delivery" else None,
        )
        if paid:
            payment, _start = payment_start(order=order, provider="cash")
            payment_confirm(
                provider="cash",
                out_trade_no=payment.out_trade_no,
                transaction_id=f"cash-{payment.out_trade_no}",
                amount_fen=payment.amount_fen,
            )
        order.refresh_from_db()
        return order

    return _place


class DeskNode:
    """An element of a parsed page: its tag, attributes, children (nodes and text)."""

    def __init__(self, tag: str, attrs: dict, parent: "DeskNode | None") -> None:
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    @property
    def text(self) -> str:
        """The text inside, whitespace collapsed as a browser shows it."""
        parts: list[str] = []

        def walk(node: DeskNode) -> None:
            for child in node.children:
                if isinstance(child, str):
                    parts.append(child)
                else:
                    walk(child)

        walk(self)
        return " ".join("".join(parts).split())

    def all(self, tag: str, **attrs: str) -> list["DeskNode"]:
        found: list[DeskNode] = []

        def walk(node: DeskNode) -> None:
            for child in node.children:
                if isinstance(child, DeskNode):
                    if child.tag == tag and all(
                        child.attrs.get(key.rstrip("_")) == value for key, value in attrs.items()
                    ):
                        found.append(child)
                    walk(child)

        walk(self)
        return found

    def one(self, tag: str = "*", **attrs: str) -> "DeskNode | None":
        if tag == "*":
            matches = [node for node in self._every() if _matches(node, attrs)]
        else:
            matches = self.all(tag, **attrs)
        assert len(matches) <= 1, f"{len(matches)} <{tag} {attrs}>"
        return matches[0] if matches else None

    def by_id(self, element_id: str) -> "DeskNode | None":
        return self.one(id=element_id)

    def _every(self) -> list["DeskNode"]:
        every: list[DeskNode] = []

        def walk(node: DeskNode) -> None:
            for child in node.children:
                if isinstance(child, DeskNode):
                    every.append(child)
                    walk(child)

        walk(self)
        return every

    def rows(self) -> list[list[str]]:
        """The text of each body row's cells (a table, or the page's only table body)."""
        body = self.all("tbody")
        assert len(body) == 1, f"{len(body)} table bodies"
        return [
            [cell.text for cell in row.children if isinstance(cell, DeskNode)]
            for row in body[0].all("tr")
        ]


def _matches(node: DeskNode, attrs: dict) -> bool:
    return all(node.attrs.get(key.rstrip("_")) == value for key, value in attrs.items())


_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


@pytest.fixture
def desk_html():
    """``desk_html(response)``: the page as a tree of ``DeskNode`` (``by_id``, ``one``,
    ``all``, ``rows``, ``text``); ``.messages`` lists its messages as (level, text)."""
    from html.parser import HTMLParser

    class Parser(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.root = DeskNode("#document", {}, None)
            self.current = self.root

        def handle_starttag(self, tag, attrs):
            node = DeskNode(tag, {key: value or "" for key, value in attrs}, self.current)
            self.current.children.append(node)
            if tag not in _VOID:
                self.current = node

        def handle_startendtag(self, tag, attrs):
            node = DeskNode(tag, {key: value or "" for key, value in attrs}, self.current)
            self.current.children.append(node)

        def handle_endtag(self, tag):
            if tag in _VOID:
                return
            node = self.current
            while node is not self.root and node.tag != tag:
                node = node.parent
            if node is not self.root:
                self.current = node.parent

        def handle_data(self, data):
            self.current.children.append(data)

    def parse(response) -> DeskNode:
        parser = Parser()
        parser.feed(response.content.decode())
        parser.close()
        root = parser.root
        listed = root.one("ul", class_="messages")
        root.messages = (
            [(item.attrs.get("class", ""), item.text) for item in listed.all("li")]
            if listed
            else []
        )
        return root

    return parse


# --- pos_: the counter sale (tests/console/test_pos.py, test_pos_concurrency.py,
# test_pos_browser.py) ------------------------------------------------------------------------

POS_RICE_BARCODE = "6901234500011"
POS_OIL_BARCODE = "6901234500028"


@pytest.fixture
def pos_goods(store_a):
    """Rice 5kg at 39.90 and oil 5L at 59.00, 20 of each received at store A (SH001)."""
    from inventory.services import StockLine, stock_receive
    from tests import factories

    rice = factories.SKUFactory(
        code="RICE-5KG",
        barcode=POS_RICE_BARCODE,
        price_fen=3990,
        attributes={"规格": "5kg"},
        product__name="东北大米",
    )
    oil = factories.SKUFactory(
        code="OIL-5L",
        barcode=POS_OIL_BARCODE,
        price_fen=5900,
        attributes={"规格": "5L"},
        product__name="花生油",
    )
    stock_receive(
        store=store_a, lines=[StockLine(rice, 20), StockLine(oil, 20)], idempotency_key="pos-seed"
    )
    return rice, oil


@pytest.fixture
def pos_member(db):
    """王芳, a silver member (5% off, 1.2 points per yuan) with 1000 points, a counter coupon
    "spend 100 save 10" (POS10OFF) and an online-only coupon (WEB5OFF) the till does not list."""
    from datetime import timedelta

    from django.utils import timezone

    from members.models import Tier
    from members.services.points import points_apply
    from tests import factories
    from tests.members.factories import CouponFactory, CouponTemplateFactory

    # Seeded by a migration; a transactional test before this one may have emptied the table.
    silver, _created = Tier.objects.get_or_create(
        code="silver",
        defaults={
            "name": "银卡",
            "threshold_fen": 100_000,
            "discount_percent": 5,
            "points_multiplier": 120,
        },
    )
    member = factories.MemberFactory(mobile="13912345678", name="王芳", tier=silver)
    points_apply(member=member, points=1000, reason="adjust", reference="pos-seed")
    now = timezone.now()
    window = {"valid_from": now - timedelta(days=1), "valid_until": now + timedelta(days=30)}
    CouponFactory(
        member=member,
        code="POS10OFF",
        template=CouponTemplateFactory(
            name="满100减10",
            kind="threshold",
            threshold_fen=10_000,
            amount_fen=1000,
            scope="counter",
            **window,
        ),
        **window,
    )
    CouponFactory(
        member=member,
        code="WEB5OFF",
        template=CouponTemplateFactory(name="线上5元券", amount_fen=500, scope="online", **window),
        **window,
    )
    member.refresh_from_db()
    return member


@pytest.fixture(scope="module")
def pos_pay_sandbox():
    """The WeChat sandbox on a free port, for the till's payment codes."""
    from wechat.sandbox import SandboxServer

    server = SandboxServer().start()
    yield server
    server.stop()


@pytest.fixture
def pos_wechat_pay(settings, pos_pay_sandbox):
    """The platform's v3 gateway pointed at the sandbox; the till waits 0.6 s for a shopper
    who has to confirm. Gives the shopper's side over HTTP: her payment code, the trades."""
    import requests

    from wechat.sandbox import SANDBOX_APP_ID, pay_v3

    sandbox = pos_pay_sandbox.sandbox
    sandbox.reset()
    for name, value in pay_v3.platform_settings(pos_pay_sandbox.url).items():
        setattr(settings, name, value)
    settings.WECHAT_APP_ID = SANDBOX_APP_ID
    settings.WECHAT_PAY_VERSION = "v3"
    settings.WECHAT_PAY_CODEPAY_POLL_SECONDS = 0.05
    settings.WECHAT_PAY_CODEPAY_DEADLINE_SECONDS = 0.6
    base = pos_pay_sandbox.url

    class Shopper:
        url = base

        @staticmethod
        def code(**spec) -> str:
            response = requests.post(base + "sandbox/pay/v3/payment-codes", json=spec, timeout=5)
            assert response.status_code == 201, response.text
            return response.json()["auth_code"]

        @staticmethod
        def trade(out_trade_no: str) -> dict:
            trades = requests.get(base + "sandbox/pay/v3/trades", timeout=5).json()["trades"]
            return next(trade for trade in trades if trade["out_trade_no"] == out_trade_no)

        @staticmethod
        def codepays() -> int:
            return len(sandbox.calls(path="/v3/pay/transactions/codepay"))

        @staticmethod
        def fault(path: str, *, mode: str = "busy", times: int = 1) -> None:
            spec = {"path": path, "mode": mode, "times": times}
            response = requests.post(base + "sandbox/faults", json=spec, timeout=5)
            assert response.status_code == 201, response.text

        @staticmethod
        def reset() -> None:
            sandbox.reset()

    yield Shopper
    sandbox.reset()
