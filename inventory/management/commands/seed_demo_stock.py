"""``manage.py seed_demo_stock``: stock for the 邻鲜超市 demo chain (run ``seed_demo`` first).

All of it is written through the inventory services and operations, each event dated when it
happened (``retail.demo_clock``):

* an opening goods receipt for every store and the warehouse, 29 days ago; a store carries most
  of the range, the warehouse all of it;
* replenishment settings (safety stock, lead time, order cycle, pack size) on fresh goods,
  milk, bread, drinks and infant formula in the stores;
* four weeks of counter sales of each store's best sellers, the sales rate reorder suggestions
  work from; a few best sellers end low or sold out, so the suggestions have something to say;
* one transfer from the warehouse on its way to 陆家嘴店, and a count sheet open at 人民广场店.

The plan comes from the demo catalogue and a fixed random seed per store, never from what the
database holds, so every run asks for the same movements under the same idempotency keys: a
re-run finds each key taken and writes nothing.
"""

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Model, Q
from django.utils import timezone

from inventory.models import (
    StockCount,
    StockCountLine,
    StockItem,
    StockMovement,
    Transfer,
    TransferLine,
)
from inventory.operations import (
    stock_count_create,
    stock_count_set_line,
    stock_item_update_settings,
    transfer_create,
    transfer_send,
)
from inventory.selectors import low_stock
from inventory.services import StockLine, stock_receive, stock_sell_at_counter
from retail import demo_data
from retail.demo_clock import demo_clock
from retail.models import SKU, Store

SEED = 2026
HISTORY_DAYS = 28
KEY = "demo"  # every idempotency key written here starts with it

# Units on hand in a store at the end of the history: by leaf category, else by top category.
END_UNITS: dict[str, tuple[int, int]] = {
    "FRESH": (8, 30),
    "FRESH-SEAFOOD": (4, 12),
    "DAIRY": (6, 24),
    "PANTRY": (6, 30),
    "SNACK": (8, 36),
    "DRINK": (12, 60),
    "DRINK-LIQUOR": (2, 6),
    "HOME": (4, 20),
    "BABY": (2, 8),
}
WAREHOUSE_FACTOR = 8  # the warehouse holds cases for the whole region
# The share of the catalogue a store carries: the three flagships most of it, the 文三路
# corner shop under half; the warehouse carries everything.
RANGE_SHARE = {"SH001": 0.85, "SH003": 0.85, "HZ002": 0.85, "HZ004": 0.45}
STANDARD_RANGE_SHARE = 0.7

# Counter sales: each store's best sellers come from these leaf categories.
BEST_SELLER_LEAVES = (
    "FRESH-FRUIT",
    "FRESH-VEG",
    "FRESH-MEAT",
    "DAIRY-MILK",
    "DAIRY-YOGURT",
    "DAIRY-BAKERY",
    "PANTRY-INSTANT",
    "SNACK-BISCUIT",
    "SNACK-CANDY",
    "DRINK-WATER",
    "DRINK-TEA",
    "DRINK-SODA",
    "DRINK-BEER",
    "HOME-PAPER",
)
BEST_SELLERS = 16
LOW_PER_STORE = 4  # best sellers that end low: the first sold out, the others at 1 to 3


class Replenishment(NamedTuple):
    safety_stock: int
    lead_time_days: int
    review_days: int
    pack_size: int


# Store settings by leaf category. Fresh goods come daily; drinks by the case; a multipack
# ("×", "整箱") is its own case and keeps a smaller safety stock.
REPLENISHMENT: dict[str, Replenishment] = {
    "FRESH-FRUIT": Replenishment(3, 1, 1, 1),
    "FRESH-VEG": Replenishment(4, 1, 1, 1),
    "FRESH-MEAT": Replenishment(3, 1, 2, 1),
    "FRESH-SEAFOOD": Replenishment(2, 1, 2, 1),
    "DAIRY-MILK": Replenishment(4, 1, 3, 1),
    "DAIRY-BAKERY": Replenishment(3, 1, 2, 1),
    "DRINK-WATER": Replenishment(12, 2, 7, 24),
    "DRINK-TEA": Replenishment(6, 2, 7, 15),
    "DRINK-SODA": Replenishment(6, 2, 7, 24),
    "DRINK-BEER": Replenishment(6, 3, 7, 12),
    "BABY-FORMULA": Replenishment(2, 5, 14, 6),
}
MULTIPACK_MARKS = ("×", "整箱")

TRANSFER_FROM, TRANSFER_TO = "WH-SH01", "SH003"
TRANSFER_NOTE = "补货：陆家嘴店缺货及低库存商品"
COUNT_STORE = "SH002"
COUNT_NOTE = "月度盘点：酒水饮料区"
# Counted minus the books, line by line: most shelves agree, two are short, one has extra.
COUNT_DIFFERENCES = (0, 0, -1, 0, -2, 0, 1, 0)

SEEDED_MODELS: tuple[type[Model], ...] = (
    StockItem,
    StockMovement,
    Transfer,
    TransferLine,
    StockCount,
    StockCountLine,
)


class DemoSku(NamedTuple):
    code: str
    leaf: str
    spec: str


def demo_skus() -> list[DemoSku]:
    """The demo catalogue's SKUs in code order, numbered as ``seed_demo`` numbers them."""
    skus, product_number = [], 0
    for leaf, products in demo_data.CATALOGUE.items():
        for *_product, variants in products:
            product_number += 1
            for variant_number, (attributes, _price) in enumerate(variants, start=1):
                code = f"P{product_number:04d}-{variant_number:02d}"
                skus.append(DemoSku(code, leaf, attributes.get("规格", "")))
    return skus


def replenishment_for(sku: DemoSku) -> Replenishment | None:
    settings = REPLENISHMENT.get(sku.leaf)
    if settings is None or not any(mark in sku.spec for mark in MULTIPACK_MARKS):
        return settings
    return settings._replace(safety_stock=min(settings.safety_stock, 2), pack_size=1)


@dataclass(frozen=True)
class Sale:
    key: str
    reference: str
    at: datetime
    lines: dict[str, int]  # SKU code -> units


@dataclass
class StorePlan:
    code: str
    opening: dict[str, int] = field(default_factory=dict)  # SKU code -> units received
    settings: dict[str, Replenishment] = field(default_factory=dict)
    sales: list[Sale] = field(default_factory=list)
    low: list[str] = field(default_factory=list)  # best sellers left low, sold out first


def _at(day: date, hour: int, minute: int) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour, minute)))


def store_plan(demo: demo_data.DemoStore, skus: list[DemoSku], today: date) -> StorePlan:
    """What ``demo`` receives, sells and ends with: the same every run (its own seed)."""
    rng = random.Random(f"{SEED}:{demo.code}")  # noqa: S311 - repeatable demo data, no secret
    plan = StorePlan(demo.code)
    warehouse = demo.kind == Store.Kind.WAREHOUSE
    share = 1.0 if warehouse else RANGE_SHARE.get(demo.code, STANDARD_RANGE_SHARE)
    carried = [sku for sku in skus if rng.random() < share]
    end = {}
    for sku in carried:
        low, high = END_UNITS.get(sku.leaf) or END_UNITS[sku.leaf.split("-")[0]]
        end[sku.code] = rng.randint(low, high) * (WAREHOUSE_FACTOR if warehouse else 1)
    if not warehouse:
        plan.settings = {
            sku.code: settings for sku in carried if (settings := replenishment_for(sku))
        }
        # A shelf normally holds more than its safety stock; the low ones are chosen below.
        for code, settings in plan.settings.items():
            end[code] = max(end[code], settings.safety_stock + 1)

    sold = Counter[str]()
    if demo.offers_counter_sales:
        candidates = [sku.code for sku in carried if sku.leaf in BEST_SELLER_LEAVES]
        best_sellers = rng.sample(candidates, BEST_SELLERS)
        for days_ago in range(HISTORY_DAYS, 0, -1):
            day = today - timedelta(days=days_ago)
            moments = sorted(
                (rng.randint(9, 20), rng.randint(0, 59)) for _basket in range(rng.randint(1, 3))
            )
            for number, (hour, minute) in enumerate(moments, start=1):
                basket = rng.sample(best_sellers, rng.choice((1, 1, 2)))
                lines = {code: rng.choice((1, 1, 2, 2, 3, 4)) for code in basket}
                sold.update(lines)
                plan.sales.append(
                    Sale(
                        key=f"{KEY}:{demo.code}:d{days_ago:02d}-{number}",
                        reference=f"POS-{demo.code}-{day:%Y%m%d}-{number:02d}",
                        at=_at(day, hour, minute),
                        lines=lines,
                    )
                )
        selling = [code for code in best_sellers if sold[code] >= 3]
        plan.low = rng.sample(selling, LOW_PER_STORE)
        end[plan.low[0]] = 0
        for code in plan.low[1:]:
            end[code] = rng.randint(1, 3)
    plan.opening = {
        sku.code: end[sku.code] + sold[sku.code]
        for sku in carried
        if end[sku.code] + sold[sku.code] > 0
    }
    return plan


class StockSeeder:
    def __init__(self, store_codes: list[str], now: datetime) -> None:
        self.now = now
        self.today = timezone.localtime(now).date()
        self.demos = [demo for demo in demo_data.STORES if demo.code in store_codes]
        self.stores = {store.code: store for store in Store.objects.filter(code__in=store_codes)}
        missing = [code for code in store_codes if code not in self.stores]
        if missing:
            raise CommandError(f"No store {', '.join(missing)}: run `manage.py seed_demo` first.")
        skus = demo_skus()
        self.leaves = {sku.code: sku.leaf for sku in skus}
        self.sku_ids = dict(
            SKU.objects.filter(code__in=[sku.code for sku in skus]).values_list("code", "pk")
        )
        if len(self.sku_ids) != len(skus):
            raise CommandError("The demo catalogue is incomplete: run `manage.py seed_demo` first.")
        self.plans = {demo.code: store_plan(demo, skus, self.today) for demo in self.demos}
        # The logins seed_demo gives each store: mgr_sh001, clerk_wh_sh01, ...
        self.users = {
            user.username: user
            for user in User.objects.filter(username__regex=r"^(mgr|clerk)_[a-z0-9_]+$")
        }
        self.settings_updated = 0
        # The services key each line "<kind>:<key>:<SKU id>" (kind: receipt, counter). A call
        # whose lines are all in the ledger would change nothing and is not made: a re-run
        # costs one query here instead of one per line. Were that format to change, the calls
        # would simply be made again, which is as safe and only slower.
        self.taken = set(
            StockMovement.objects.filter(
                Q(idempotency_key__startswith=f"receipt:{KEY}:")
                | Q(idempotency_key__startswith=f"counter:{KEY}:")
            ).values_list("idempotency_key", flat=True)
        )

    def staff(self, role: str, store_code: str) -> User | None:
        return self.users.get(f"{role}_{store_code.lower().replace('-', '_')}")

    def lines(self, units: dict[str, int]) -> list[StockLine]:
        return [StockLine(self.sku_ids[code], quantity) for code, quantity in units.items()]

    def booked(self, kind: str, key: str, units: dict[str, int]) -> bool:
        return all(f"{kind}:{key}:{self.sku_ids[code]}" in self.taken for code in units)

    def seed(self) -> None:
        opened = _at(self.today - timedelta(days=HISTORY_DAYS + 1), 6, 30)
        for code, plan in self.plans.items():
            store, opening = self.stores[code], f"{KEY}:{code}:opening"
            with demo_clock(opened):
                if not self.booked("receipt", opening, plan.opening):
                    stock_receive(
                        store=store,
                        lines=self.lines(plan.opening),
                        idempotency_key=opening,
                        actor=self.staff("mgr", code),
                        reference=f"期初入库 {code}",
                    )
                self.configure(store, plan)
            clerk = self.staff("clerk", code)
            for sale in plan.sales:
                if self.booked("counter", sale.key, sale.lines):
                    continue
                with demo_clock(sale.at):
                    stock_sell_at_counter(
                        store=store,
                        lines=self.lines(sale.lines),
                        idempotency_key=sale.key,
                        actor=clerk,
                        reference=sale.reference,
                    )
        if TRANSFER_FROM in self.plans and TRANSFER_TO in self.plans:
            self.transfer_in_transit()
        if COUNT_STORE in self.plans:
            self.count_left_open()

    def configure(self, store: Store, plan: StorePlan) -> None:
        """The plan's settings on the store's rows; a row already set so is left alone."""
        items = {item.sku_id: item for item in StockItem.objects.filter(store=store)}
        for code, wanted in plan.settings.items():
            item = items[self.sku_ids[code]]
            if Replenishment(*(getattr(item, name) for name in Replenishment._fields)) != wanted:
                stock_item_update_settings(item=item, **wanted._asdict())
                self.settings_updated += 1

    def transfer_in_transit(self) -> None:
        """The warehouse sends 陆家嘴店 what it is short of, a case or a dozen of each."""
        source, target = self.stores[TRANSFER_FROM], self.stores[TRANSFER_TO]
        transfer = Transfer.objects.filter(
            from_store=source, to_store=target, note=TRANSFER_NOTE
        ).first()
        actor = self.staff("mgr", TRANSFER_FROM)
        if transfer is None:
            plan = self.plans[TRANSFER_TO]
            units = {}
            for code in plan.low:
                pack = plan.settings[code].pack_size if code in plan.settings else 1
                units[code] = -(-12 // pack) * pack
            with demo_clock(self.now - timedelta(hours=4)):
                transfer = transfer_create(
                    from_store=source,
                    to_store=target,
                    lines=self.lines(units),
                    actor=actor,
                    note=TRANSFER_NOTE,
                )
        if transfer.status == Transfer.Status.DRAFT:
            with demo_clock(self.now - timedelta(hours=3)):
                transfer_send(transfer=transfer, actor=actor)

    def count_left_open(self) -> None:
        """Staff of 人民广场店 counted part of the drinks aisle; nobody applied the sheet yet."""
        store = self.stores[COUNT_STORE]
        count = StockCount.objects.filter(store=store, note=COUNT_NOTE).first()
        actor = self.staff("mgr", COUNT_STORE)
        if count is None:
            with demo_clock(self.now - timedelta(hours=1)):
                count = stock_count_create(store=store, actor=actor, note=COUNT_NOTE)
        if count.lines.exists():
            return
        drinks = [
            code
            for code in self.plans[COUNT_STORE].opening
            if code not in self.plans[COUNT_STORE].low and self.leaves[code].startswith("DRINK-")
        ][: len(COUNT_DIFFERENCES)]
        on_books = dict(
            StockItem.objects.filter(
                store=store, sku_id__in=[self.sku_ids[code] for code in drinks]
            ).values_list("sku_id", "on_hand")
        )
        with demo_clock(self.now - timedelta(minutes=40)):
            for code, difference in zip(drinks, COUNT_DIFFERENCES, strict=False):
                sku_id = self.sku_ids[code]
                stock_count_set_line(
                    count=count, sku=sku_id, counted=max(on_books[sku_id] + difference, 0)
                )


def row_counts() -> Counter[str]:
    return Counter({model.__name__: model._default_manager.count() for model in SEEDED_MODELS})


class Command(BaseCommand):
    help = (
        "Stock the 邻鲜超市 demo chain: opening receipts, four weeks of counter sales, "
        "replenishment settings, a transfer in transit and an open count. Run seed_demo first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--stores",
            metavar="CODE,CODE",
            help="Stock only these stores (default: the whole demo chain and its warehouse).",
        )

    def handle(self, *args: Any, stores: str | None, **options: Any) -> None:
        codes = [demo.code for demo in demo_data.STORES]
        if stores:
            wanted = [code.strip() for code in stores.split(",") if code.strip()]
            unknown = sorted(set(wanted) - set(codes))
            if unknown:
                raise CommandError(f"Not a demo store: {', '.join(unknown)}.")
            codes = [code for code in codes if code in wanted]

        before = row_counts()
        with transaction.atomic():
            seeder = StockSeeder(codes, timezone.now())
            seeder.seed()
        created = row_counts() - before

        plans = seeder.plans.values()
        sales = sum(len(plan.sales) for plan in plans)
        units = sum(sum(sale.lines.values()) for plan in plans for sale in plan.sales)
        reorder = sum(len(low_stock(store=seeder.stores[plan.code])) for plan in plans)
        summary = (
            f"{demo_data.BRAND} demo stock: {sum(len(p.opening) for p in plans)} stock items "
            f"in {len(plans)} {'location' if len(plans) == 1 else 'locations'}, "
            f"{sales} counter sales ({units} units) over "
            f"{HISTORY_DAYS} days, {reorder} reorder suggestions"
        )
        if not created and not seeder.settings_updated:
            self.stdout.write(self.style.SUCCESS(f"{summary}. Nothing new: all there already."))
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"{summary} ({created['StockMovement']} ledger rows, {created['StockItem']} "
                f"stock items, {created['Transfer']} transfer, {created['StockCount']} count "
                f"created; {seeder.settings_updated} stock settings set)."
            )
        )
