"""Fixtures shared by the members tests; each part keeps its own section (append only)."""

import pytest

from inventory.services import StockLine, stock_receive
from members.models import Tier
from members.services.points import points_apply
from tests import factories

# --- Coupons, promotions and pricing (helper C) -----------------------------------------------


@pytest.fixture
def shop(store_a):
    """Store A (SH001) sells at the counter, for pickup and ships from the store."""
    store_a.offers_ship_from_store = True
    store_a.save(update_fields=["offers_ship_from_store"])
    return store_a


@pytest.fixture
def drinks(db):
    """饮料, with 瓶装水 under it."""
    return factories.CategoryFactory(code="DRINKS", name="饮料")


def _sku(shop, *, price_fen: int, name: str, category, on_hand: int = 20):
    sku = factories.SKUFactory(price_fen=price_fen, product__name=name, product__category=category)
    stock_receive(store=shop, lines=[StockLine(sku, on_hand)], idempotency_key=f"seed-{sku.pk}")
    return sku


@pytest.fixture
def water(shop, drinks):
    """矿泉水 at 2.00 yuan, in 饮料 > 瓶装水."""
    water_category = factories.CategoryFactory(code="WATER", name="瓶装水", parent=drinks)
    return _sku(shop, price_fen=200, name="矿泉水", category=water_category)


@pytest.fixture
def milk(shop):
    """鲜牛奶 at 12.50 yuan, in 乳品."""
    dairy = factories.CategoryFactory(code="DAIRY", name="乳品")
    return _sku(shop, price_fen=1250, name="鲜牛奶", category=dairy)


@pytest.fixture
def chips(shop):
    """薯片 at 8.90 yuan, in 零食."""
    snacks = factories.CategoryFactory(code="SNACKS", name="零食")
    return _sku(shop, price_fen=890, name="薯片", category=snacks)


@pytest.fixture
def tier10(db):
    """A tier with 10% off (the default tiers' thresholds are left alone)."""
    return Tier.objects.create(
        code="test10", name="测试十折", threshold_fen=7_777_700, discount_percent=10
    )


@pytest.fixture
def shopper(db):
    """A member without a tier and without points."""
    return factories.MemberFactory(mobile="13900000001", name="李娜")


@pytest.fixture
def give_points():
    """Credit a member's points through the ledger, as a staff adjustment would."""

    def _give(member, points: int) -> None:
        points_apply(member=member, points=points, reason="adjust", reference=f"seed-{points}")

    return _give
