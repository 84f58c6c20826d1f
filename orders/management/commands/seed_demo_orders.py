"""``manage.py seed_demo_orders``: members, delivery fees and 30 orders for the 邻鲜超市 demo
(run ``seed_demo`` and ``seed_demo_stock`` first).

Every order is placed and moved along by the real services (checkout, cash payments through
``payment_start`` and ``payment_confirm``, pickup, shipment, delivery, cancellation, refund,
after-sales), each step at the moment it happened (``retail.demo_clock``) and all steps of all
orders in time order, so timelines, reservations and ledger rows are what real orders leave.
Baskets are drawn, from a fixed seed per order, among what the store has in stock and has not
moved since the order was placed, so each item's ledger still reads in time order.

Each order has a stable client reference. A re-run finds it and takes only the steps its
status still waits for: normally none, so nothing is written. Unpaid orders are placed minutes
before the seed runs and expire as real ones do (``ORDER_PAYMENT_MINUTES``, beat's job); a
re-run does not bring them back.
"""

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, NamedTuple

from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from inventory.models import StockItem, StockMovement
from inventory.selectors import stock_at_store
from members.models import Member
from members.services.identity import member_signup_at_counter
from orders.aftersales import after_sale_request
from orders.models import (
    ActorKind,
    AfterSale,
    Channel,
    Fulfilment,
    Order,
    Refund,
    ShippingRule,
)
from orders.payments import payment_confirm, payment_start, refund_create, refund_submit
from orders.pricing import BasketLine
from orders.services import (
    checkout_place,
    order_cancel,
    order_confirm_receipt,
    order_mark_delivered,
    order_mark_ready,
    pickup_handover,
    shipment_create,
)
from orders.transitions import Cause
from retail import demo_data
from retail.demo_clock import demo_clock
from retail.models import OutboxDelivery, OutboxEvent, Store

SEED = 2026
S = Order.Status
MIN_AVAILABLE = 4  # a basket takes at most 3 of an item, and leaves some on the shelf


class DemoMember(NamedTuple):
    mobile: str
    name: str
    store: str  # where she signed up, at the counter
    joined_days_ago: int
    city: tuple[str, str]  # province, city
    district: str
    street: str  # the delivery address's detail


SH, HZ = demo_data.SHANGHAI, demo_data.HANGZHOU
MEMBERS: list[DemoMember] = [
    DemoMember("13917620481", "王秀英", "SH001", 412, SH, "静安区", "常德路800号5号楼1202室"),
    DemoMember("13564218837", "李明轩", "SH003", 236, SH, "浦东新区", "浦东南路1550号2号楼801室"),
    DemoMember("18621057439", "张雨涵", "SH004", 97, SH, "徐汇区", "漕溪北路595号3号楼1604室"),
    DemoMember("15921386602", "刘志强", "SH005", 305, SH, "杨浦区", "国权路39号6号楼502室"),
    DemoMember("13858174026", "陈静怡", "HZ002", 158, HZ, "拱墅区", "武林路108号1幢703室"),
    DemoMember("18767102935", "杨浩然", "HZ003", 41, HZ, "滨江区", "江汉路1785号4幢1101室"),
    DemoMember("13761945270", "赵丽华", "SH002", 523, SH, "黄浦区", "福州路555号1203室"),
    DemoMember("15068127734", "黄子涵", "HZ001", 12, HZ, "上城区", "解放路138号2单元602室"),
]

# Store code -> (delivery fee, free from) in fen; other stores use the settings' default.
SHIPPING_RULES: dict[str, tuple[int, int | None]] = {
    "SH003": (800, 5900),
    "HZ002": (500, 4900),
}

# What a kind of shopping trip buys, by leaf category.
THEMES: dict[str, tuple[str, ...]] = {
    "breakfast": ("DAIRY-MILK", "DAIRY-BAKERY", "FRESH-MEAT", "FRESH-FRUIT"),
    "dinner": ("FRESH-VEG", "FRESH-MEAT", "FRESH-SEAFOOD", "PANTRY-SAUCE"),
    "pantry": ("PANTRY-RICE", "PANTRY-OIL", "PANTRY-SEASONING", "HOME-PAPER"),
    "party": ("DRINK-BEER", "SNACK-NUT", "DRINK-SODA", "SNACK-BISCUIT"),
    "baby": ("BABY-DIAPER", "BABY-FORMULA", "HOME-PAPER"),
    "snacks": ("SNACK-CANDY", "SNACK-BISCUIT", "DRINK-TEA"),
    "home": ("HOME-CLEAN", "HOME-CARE", "HOME-PAPER"),
    "quick": ("DRINK-WATER", "PANTRY-INSTANT", "SNACK-BISCUIT"),
}

CARRIERS = {
    "SF": lambda rng: f"SF14{rng.randrange(10**11):011d}",
    "YTO": lambda rng: f"YT75{rng.randrange(10**11):011d}",
    "ZTO": lambda rng: f"7731{rng.randrange(10**10):010d}",
}

MINI, H5, COUNTER, PARTNER = Channel.MINI_SHOP, Channel.H5, Channel.COUNTER, Channel.PARTNER
DELIVERY, PICKUP = Fulfilment.DELIVERY, Fulfilment.PICKUP


# When an order was placed, from the moment the seed runs: today's a number of minutes
# before, older ones at a time of their day.
Placed = Callable[[datetime], datetime]


def minutes_ago(minutes: int) -> Placed:
    return lambda now: now - timedelta(minutes=minutes)


def days_ago(days: int, at: str) -> Placed:
    hour, minute = (int(part) for part in at.split(":"))

    def placed(now: datetime) -> datetime:
        day = timezone.localtime(now).date() - timedelta(days=days)
        return timezone.make_aware(datetime.combine(day, time(hour, minute)))

    return placed


@dataclass(frozen=True)
class DemoOrder:
    reference: str  # the client reference: the order's key
    store: str
    channel: str
    fulfilment: str
    member: int | None  # index into MEMBERS
    theme: str
    lines: int
    placed: Placed
    story: str  # a key of STORIES: how far the order has got
    carrier: str = ""
    note: str = ""


COUNTER_SALE = Fulfilment.COUNTER

ORDERS: list[DemoOrder] = [
    # Waiting for payment: placed minutes ago, they expire as real ones do.
    DemoOrder("demo-001", "SH001", MINI, PICKUP, 0, "breakfast", 3, minutes_ago(4), "paying"),
    DemoOrder("demo-002", "SH003", MINI, DELIVERY, 1, "dinner", 4, minutes_ago(7), "placed"),
    DemoOrder("demo-003", "HZ002", H5, DELIVERY, 4, "snacks", 1, minutes_ago(2), "placed"),
    # Paid, waiting for the store.
    DemoOrder("demo-004", "SH005", MINI, DELIVERY, 3, "party", 3, minutes_ago(35), "paid",
              note="请放门口，谢谢"),
    DemoOrder("demo-005", "WH-SH01", MINI, DELIVERY, 1, "pantry", 3, minutes_ago(50), "paid"),
    DemoOrder("demo-006", "SH002", MINI, PICKUP, 6, "snacks", 2, minutes_ago(12), "paid"),
    DemoOrder("demo-007", "HZ001", H5, PICKUP, 7, "breakfast", 2, minutes_ago(20), "paid"),
    # Packed and waiting at the store.
    DemoOrder("demo-008", "SH001", MINI, PICKUP, 0, "dinner", 3, minutes_ago(120), "ready"),
    DemoOrder("demo-009", "SH004", MINI, PICKUP, 2, "baby", 2, minutes_ago(90), "ready"),
    DemoOrder("demo-010", "HZ003", H5, PICKUP, 5, "quick", 3, minutes_ago(180), "ready"),
    DemoOrder("demo-011", "SH002", PARTNER, PICKUP, 6, "party", 2, minutes_ago(50), "ready"),
    # With the carrier.
    DemoOrder("demo-012", "WH-SH01", MINI, DELIVERY, 2, "pantry", 2, days_ago(1, "16:20"),
              "shipped", carrier="SF"),
    DemoOrder("demo-013", "SH003", H5, DELIVERY, 1, "home", 1, minutes_ago(360), "shipped",
              carrier="YTO"),
    DemoOrder("demo-014", "HZ002", MINI, DELIVERY, 4, "baby", 2, days_ago(1, "09:45"), "shipped",
              carrier="ZTO", note="工作日白天家里没人，请放快递柜"),
    DemoOrder("demo-015", "SH005", PARTNER, DELIVERY, 3, "quick", 2, minutes_ago(300), "shipped",
              carrier="SF"),
    DemoOrder("demo-016", "WH-SH01", MINI, DELIVERY, 6, "home", 3, days_ago(2, "10:30"),
              "delivered", carrier="YTO"),
    # Sold over the counter (one to a member).
    DemoOrder("demo-017", "SH002", COUNTER, COUNTER_SALE, None, "quick", 2, minutes_ago(300),
              "counter"),
    DemoOrder("demo-018", "HZ004", COUNTER, COUNTER_SALE, None, "snacks", 1,
              days_ago(1, "18:05"), "counter"),
    DemoOrder("demo-019", "SH001", COUNTER, COUNTER_SALE, 0, "breakfast", 3, days_ago(2, "08:15"),
              "counter"),
    DemoOrder("demo-020", "HZ001", COUNTER, COUNTER_SALE, None, "party", 2, days_ago(3, "20:40"),
              "counter"),
    # Completed: picked up, or delivered and confirmed by the shopper.
    DemoOrder("demo-021", "SH004", MINI, PICKUP, 2, "breakfast", 2, days_ago(1, "07:50"),
              "picked_up"),
    DemoOrder("demo-022", "HZ002", H5, PICKUP, 4, "snacks", 2, days_ago(3, "12:10"),
              "picked_up"),
    DemoOrder("demo-023", "SH005", MINI, PICKUP, 3, "dinner", 3, days_ago(4, "16:30"),
              "picked_up"),
    DemoOrder("demo-024", "SH003", MINI, DELIVERY, 1, "breakfast", 3, days_ago(5, "09:20"),
              "received", carrier="SF"),
    DemoOrder("demo-025", "HZ003", MINI, DELIVERY, 5, "pantry", 2, days_ago(4, "14:05"),
              "received", carrier="ZTO"),
    # Completed, then the shopper asks for money back for a damaged item: staff to decide.
    DemoOrder("demo-026", "SH001", MINI, DELIVERY, 0, "dinner", 4, days_ago(3, "11:20"),
              "complained", carrier="SF"),
    # Cancelled: by the shopper, by the clerk, by the clock, and by a full refund.
    DemoOrder("demo-027", "SH003", MINI, PICKUP, 1, "snacks", 2, days_ago(1, "12:30"),
              "withdrawn"),
    DemoOrder("demo-028", "SH005", COUNTER, COUNTER_SALE, None, "quick", 2, minutes_ago(360),
              "voided"),
    DemoOrder("demo-029", "HZ002", H5, DELIVERY, 4, "party", 3, days_ago(2, "21:15"), "expired"),
    DemoOrder("demo-030", "SH004", MINI, PICKUP, 2, "dinner", 2, days_ago(2, "10:05"),
              "refunded"),
]  # fmt: skip


@dataclass(frozen=True)
class Step:
    """One thing that happens to an order ``after`` it was placed, once its status is
    ``status`` (and never otherwise: a re-run skips the steps an order is past)."""

    name: str
    status: str
    after: timedelta


PAY = Step("pay", S.PENDING_PAYMENT, timedelta(minutes=2))
START_PAYMENT = Step("start_payment", S.PENDING_PAYMENT, timedelta(minutes=1))
READY = Step("ready", S.PAID, timedelta(minutes=25))
HAND_OVER = Step("hand_over", S.READY_FOR_PICKUP, timedelta(hours=2))
SHIP = Step("ship", S.PAID, timedelta(hours=1, minutes=30))
DELIVER = Step("deliver", S.SHIPPED, timedelta(days=1))
CONFIRM_RECEIPT = Step("confirm_receipt", S.SHIPPED, timedelta(days=1, hours=4))
COMPLAIN = Step("complain", S.COMPLETED, timedelta(days=1, hours=6))
WITHDRAW = Step("withdraw", S.PENDING_PAYMENT, timedelta(minutes=10))
VOID = Step("void", S.PENDING_PAYMENT, timedelta(minutes=3))
EXPIRE = Step("expire", S.PENDING_PAYMENT, timedelta(minutes=settings.ORDER_PAYMENT_MINUTES))
REFUND = Step("refund", S.PAID, timedelta(minutes=40))

STORIES: dict[str, tuple[Step, ...]] = {
    "placed": (),
    "paying": (START_PAYMENT,),
    "paid": (PAY,),
    "ready": (PAY, READY),
    "shipped": (PAY, SHIP),
    "delivered": (PAY, SHIP, DELIVER),
    "counter": (PAY,),
    "picked_up": (PAY, READY, HAND_OVER),
    "received": (PAY, SHIP, CONFIRM_RECEIPT),
    "complained": (PAY, SHIP, CONFIRM_RECEIPT, COMPLAIN),
    "withdrawn": (WITHDRAW,),
    "voided": (VOID,),
    "expired": (EXPIRE,),
    "refunded": (PAY, REFUND),
}


def row_counts() -> Counter[str]:
    """Rows per model of the apps an order touches, the outbox included."""
    models = [
        *(model for label in ("members", "orders", "inventory")
          for model in apps.get_app_config(label).get_models()),
        OutboxEvent,
        OutboxDelivery,
    ]  # fmt: skip
    return Counter({model.__name__: model._default_manager.count() for model in models})


def _staff_username(role: str, store_code: str) -> str:
    return f"{role}_{store_code.lower().replace('-', '_')}"


class OrderSeeder:
    def __init__(self, now: datetime) -> None:
        self.now = now
        codes = (
            {order.store for order in ORDERS}
            | set(SHIPPING_RULES)
            | {member.store for member in MEMBERS}
        )
        self.stores = {store.code: store for store in Store.objects.filter(code__in=codes)}
        missing = sorted(codes - set(self.stores))
        if missing:
            raise CommandError(f"No store {', '.join(missing)}: run `manage.py seed_demo` first.")
        if not StockItem.objects.filter(store__code__in=codes).exists():
            raise CommandError("The demo stores hold no stock: run `manage.py seed_demo_stock`.")
        self.users = {
            user.username: user
            for user in User.objects.filter(username__regex=r"^(mgr|clerk)_[a-z0-9_]+$")
        }
        self.members: list[Member] = []
        self.orders: dict[str, Order] = {}
        self.refunds: list[tuple[int, datetime]] = []

    def staff(self, role: str, store_code: str) -> User | None:
        return self.users.get(_staff_username(role, store_code))

    # --- Members and delivery fees -----------------------------------------------------------

    def seed_members(self) -> None:
        """Each signed up at her home store's counter (the service finds her on a re-run)."""
        for demo in MEMBERS:
            with demo_clock(self.now - timedelta(days=demo.joined_days_ago)):
                member = member_signup_at_counter(
                    mobile=demo.mobile, name=demo.name, store=self.stores[demo.store], actor=None
                )
            self.members.append(member)

    def seed_shipping_rules(self) -> None:
        for code, (fee_fen, free_from_fen) in SHIPPING_RULES.items():
            store = self.stores[code]
            rule = ShippingRule.objects.filter(store=store).first() or ShippingRule(store=store)
            if rule.pk and (rule.fee_fen, rule.free_from_fen) == (fee_fen, free_from_fen):
                continue
            rule.fee_fen, rule.free_from_fen = fee_fen, free_from_fen
            rule.full_clean()
            rule.save()

    # --- Orders --------------------------------------------------------------------------------

    def seed_orders(self) -> None:
        """Every step of every order, in the order they happened."""
        timeline: list[tuple[datetime, int, DemoOrder, Step | None]] = []
        for position, demo in enumerate(ORDERS):
            placed_at = demo.placed(self.now)
            timeline.append((placed_at, position, demo, None))
            for step in STORIES[demo.story]:
                at = placed_at + step.after
                if at > self.now:
                    raise CommandError(f"{demo.reference}: {step.name} would happen in the future.")
                timeline.append((at, position, demo, step))
        timeline.sort(key=lambda event: (event[0], event[1]))
        for at, _position, demo, step in timeline:
            with demo_clock(at):
                if step is None:
                    self.orders[demo.reference] = self.place(demo, at)
                    continue
                order = Order.objects.get(pk=self.orders[demo.reference].pk)
                if order.status == step.status:
                    getattr(self, step.name)(demo, order)

    def place(self, demo: DemoOrder, at: datetime) -> Order:
        existing = Order.objects.filter(
            channel=demo.channel, client_reference=demo.reference
        ).first()
        if existing is not None:
            return existing
        store = self.stores[demo.store]
        member = None if demo.member is None else self.members[demo.member]
        counter = demo.channel == COUNTER
        return checkout_place(
            channel=demo.channel,
            store=store,
            fulfilment=demo.fulfilment,
            lines=self.basket(demo, store, at),
            client_reference=demo.reference,
            member=member,
            address=self.address(demo.member) if demo.fulfilment == DELIVERY else None,
            note=demo.note,
            actor=self.staff("clerk", demo.store) if counter else None,
            actor_kind={COUNTER: ActorKind.STAFF, PARTNER: ActorKind.PARTNER}.get(
                demo.channel, ActorKind.SHOPPER
            ),
        )

    def basket(self, demo: DemoOrder, store: Store, at: datetime) -> list[BasketLine]:
        """``demo.lines`` items of its theme the store can sell, untouched since ``at``."""
        rng = random.Random(f"{SEED}:{demo.reference}")  # noqa: S311 - repeatable demo data
        moved_since = StockMovement.objects.filter(
            stock_item__store=store, created_at__gt=at
        ).values("stock_item")
        # Online orders leave the safety stock on the shelf; the counter may sell it.
        available = "available" if demo.channel == COUNTER else "available_online"
        in_stock = (
            stock_at_store(store=store)
            .filter(**{f"{available}__gte": MIN_AVAILABLE})
            .exclude(pk__in=moved_since)
            .values_list("sku_id", "sku__product__category__code")
        )
        by_leaf: dict[str, list[int]] = {}
        for sku_id, leaf in in_stock:
            by_leaf.setdefault(leaf, []).append(sku_id)
        leaves = THEMES[demo.theme]
        chosen: list[int] = []
        for index in range(demo.lines):
            leaf = leaves[index % len(leaves)]
            candidates = [sku for sku in by_leaf.get(leaf, []) if sku not in chosen]
            if not candidates:
                candidates = sorted(
                    sku for skus in by_leaf.values() for sku in skus if sku not in chosen
                )
            chosen.append(rng.choice(candidates))
        return [BasketLine(sku_id, rng.choice((1, 1, 1, 2, 2, 3))) for sku_id in chosen]

    def address(self, member_index: int) -> dict[str, str]:
        member = MEMBERS[member_index]
        province, city = member.city
        return {
            "name": member.name,
            "mobile": member.mobile,
            "province": province,
            "city": city,
            "district": member.district,
            "detail": member.street,
        }

    # --- Steps (named as in STORIES) -----------------------------------------------------------

    def start_payment(self, demo: DemoOrder, order: Order) -> None:
        payment_start(order=order, provider="cash")

    def pay(self, demo: DemoOrder, order: Order) -> None:
        """Cash is the one provider so far: at the counter the clerk takes it (and gives
        change); an online order is confirmed as its provider's notify would confirm it."""
        payment, _start = payment_start(order=order, provider="cash")
        counter = demo.channel == COUNTER
        tendered = -(-payment.amount_fen // 1000) * 1000 if counter else payment.amount_fen
        payment_confirm(
            provider="cash",
            out_trade_no=payment.out_trade_no,
            transaction_id=payment.out_trade_no,
            amount_fen=payment.amount_fen,
            payload={"tendered_fen": tendered},
            actor=self.staff("clerk", demo.store) if counter else None,
        )

    def ready(self, demo: DemoOrder, order: Order) -> None:
        order_mark_ready(order=order, actor=self.staff("clerk", demo.store))

    def hand_over(self, demo: DemoOrder, order: Order) -> None:
        pickup_handover(
            store=order.store, pickup_code=order.pickup_code, actor=self.staff("clerk", demo.store)
        )

    def ship(self, demo: DemoOrder, order: Order) -> None:
        rng = random.Random(f"{SEED}:{demo.reference}:tracking")  # noqa: S311 - demo data
        shipment_create(
            order=order,
            carrier_code=demo.carrier,
            tracking_number=CARRIERS[demo.carrier](rng),
            actor=self.staff("clerk", demo.store),
        )

    def deliver(self, demo: DemoOrder, order: Order) -> None:
        # The carrier reports the parcel delivered.
        order_mark_delivered(order=order, actor=None, actor_kind=ActorKind.SYSTEM)

    def confirm_receipt(self, demo: DemoOrder, order: Order) -> None:
        order_confirm_receipt(order=order)

    def complain(self, demo: DemoOrder, order: Order) -> None:
        if order.after_sales.exists():
            return
        first_line = order.lines.order_by("pk").first()
        after_sale_request(
            order=order,
            kind=AfterSale.Kind.REFUND_ONLY,
            lines=[(first_line.line_key, 1)],
            reason="收到时外包装破损，商品无法食用",
        )

    def withdraw(self, demo: DemoOrder, order: Order) -> None:
        order_cancel(
            order=order, cause=Cause.SHOPPER, actor_kind=ActorKind.SHOPPER, note="不想要了"
        )

    def void(self, demo: DemoOrder, order: Order) -> None:
        order_cancel(
            order=order,
            cause=Cause.STAFF,
            actor=self.staff("clerk", demo.store),
            actor_kind=ActorKind.STAFF,
            note="顾客放弃购买",
        )

    def expire(self, demo: DemoOrder, order: Order) -> None:
        order_cancel(order=order, cause=Cause.EXPIRY)

    def refund(self, demo: DemoOrder, order: Order) -> None:
        """The shopper cannot come for the goods: the manager refunds the order in full."""
        refund = order.refunds.exclude(status=Refund.Status.FAILED).first()
        if refund is None:
            refund = refund_create(
                order=order,
                amount_fen=order.paid_fen,
                reason="顾客临时出差，无法到店自提",
                actor=self.staff("mgr", demo.store),
            )
        # The provider is asked after commit, as the refund task would.
        self.refunds.append((refund.pk, timezone.now()))


class Command(BaseCommand):
    help = (
        "Members, delivery fees and 30 orders in every state for the 邻鲜超市 demo. "
        "Run seed_demo and seed_demo_stock first."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        before = row_counts()
        seeder = OrderSeeder(timezone.now())
        with transaction.atomic():
            seeder.seed_members()
            seeder.seed_shipping_rules()
            seeder.seed_orders()
        for refund_id, at in seeder.refunds:
            with demo_clock(at):
                refund_submit(refund_id=refund_id)
        created = row_counts() - before

        statuses = Counter(
            Order.objects.filter(
                client_reference__in=[order.reference for order in ORDERS]
            ).values_list("status", flat=True)
        )
        by_status = ", ".join(
            f"{statuses[status]} {status.replace('_', ' ')}"
            for status in S.values
            if statuses[status]
        )
        summary = (
            f"{demo_data.BRAND} demo orders: {sum(statuses.values())} orders ({by_status}), "
            f"{len(MEMBERS)} members, {len(SHIPPING_RULES)} delivery fees"
        )
        if not created:
            self.stdout.write(self.style.SUCCESS(f"{summary}. Nothing new: all there already."))
            return
        rows = ", ".join(f"{count} {name}" for name, count in sorted(created.items()))
        self.stdout.write(self.style.SUCCESS(f"{summary} ({rows} rows created)."))
