"""Factories for the members app, shared by its test files: append, do not rewrite.

``tests.factories.MemberFactory`` makes members; points go through the ledger services; the
tiers are the ones migration 0005 seeds (regular, silver, gold, diamond)."""

from datetime import datetime
from zoneinfo import ZoneInfo

import factory

from members.models import Coupon, CouponTemplate

SHANGHAI = ZoneInfo("Asia/Shanghai")


# --- Identity (helper A) ----------------------------------------------------------------------


class CouponTemplateFactory(factory.django.DjangoModelFactory):
    """A "10 yuan off" template members claim, valid through 2026 and 2027."""

    class Meta:
        model = CouponTemplate

    name = factory.Sequence(lambda n: f"满减券{n}")
    kind = CouponTemplate.Kind.FIXED
    issued_by = CouponTemplate.IssuedBy.CLAIM
    amount_fen = 1000
    valid_from = datetime(2026, 1, 1, tzinfo=SHANGHAI)
    valid_until = datetime(2028, 1, 1, tzinfo=SHANGHAI)
    total_quantity = 100


class CouponFactory(factory.django.DjangoModelFactory):
    """A coupon row as it stands (for reads and merges); issuing goes through the services."""

    class Meta:
        model = Coupon

    template = factory.SubFactory(CouponTemplateFactory)
    code = factory.Sequence(lambda n: f"CPN{n:08d}")
    valid_from = factory.SelfAttribute("template.valid_from")
    valid_until = factory.SelfAttribute("template.valid_until")
    issue_reference = "claim"


# --- Coupons and promotions (helper C) -------------------------------------------------------


class PromotionFactory(factory.django.DjangoModelFactory):
    """10% off, in every channel and store, through 2026 and 2027; add its products."""

    class Meta:
        model = "members.Promotion"

    name = factory.Sequence(lambda n: f"促销{n}")
    kind = "percent_off"
    percent_off = 10
    starts_at = datetime(2026, 1, 1, tzinfo=SHANGHAI)
    ends_at = datetime(2028, 1, 1, tzinfo=SHANGHAI)


class PromotionPriceFactory(factory.django.DjangoModelFactory):
    """A member price for one SKU, in a member-price promotion of its own."""

    class Meta:
        model = "members.PromotionPrice"

    promotion = factory.SubFactory(PromotionFactory, kind="member_price", percent_off=0)
    sku = factory.SubFactory("tests.factories.SKUFactory")
    price_fen = 100
