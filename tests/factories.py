from decimal import Decimal

import factory
from django.contrib.auth.models import User

from inventory.models import StockItem
from members.models import Member
from orders.models import Channel, Fulfilment, Order
from retail.models import SKU, Category, Product, StaffRole, Store
from retail.validators import gtin_check_digit


def _barcode(n: int) -> str:
    body = f"69{n:010d}"
    return f"{body}{gtin_check_digit(body)}"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"staff{n}")
    password = factory.django.Password("pass-for-tests-1")
    is_staff = True


class StoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Store

    code = factory.Sequence(lambda n: f"ST{n:03d}")
    name = factory.Sequence(lambda n: f"测试门店{n}")
    province = "上海市"
    city = "上海市"
    district = "静安区"
    address = "南京西路1618号"
    latitude = Decimal("31.223500")
    longitude = Decimal("121.445900")
    offers_pickup = True
    offers_counter_sales = True


class StaffRoleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StaffRole

    class Params:
        hq = factory.Trait(role=StaffRole.Role.HQ_ADMIN, store=None)

    user = factory.SubFactory(UserFactory)
    role = StaffRole.Role.CLERK
    store = factory.SubFactory(StoreFactory)


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category

    code = factory.Sequence(lambda n: f"CAT{n}")
    name = factory.Sequence(lambda n: f"品类{n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    code = factory.Sequence(lambda n: f"P{n:04d}")
    name = factory.Sequence(lambda n: f"商品{n}")
    category = factory.SubFactory(CategoryFactory)
    brand = "农夫山泉"
    unit = "瓶"


class SKUFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SKU

    product = factory.SubFactory(ProductFactory)
    code = factory.Sequence(lambda n: f"SKU{n:05d}")
    barcode = factory.Sequence(_barcode)
    attributes = factory.LazyFunction(lambda: {"规格": "550ml"})
    price_fen = 200


class StockItemFactory(factory.django.DjangoModelFactory):
    """A stock row with its numbers set directly: for reads. Tests of writes go through the
    services, which keep the ledger."""

    class Meta:
        model = StockItem

    store = factory.SubFactory(StoreFactory)
    sku = factory.SubFactory(SKUFactory)
    on_hand = 0
    reserved = 0


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Member

    mobile = factory.Sequence(lambda n: f"139{n:08d}")
    name = factory.Sequence(lambda n: f"会员{n}")


class OrderFactory(factory.django.DjangoModelFactory):
    """An order row as it stands, for tests of reads and of the state machine; orders that
    hold stock come from ``checkout_place``."""

    class Meta:
        model = Order

    number = factory.Sequence(lambda n: f"261125{n:010d}")
    channel = Channel.MINI_SHOP
    fulfilment = Fulfilment.DELIVERY
    store = factory.SubFactory(StoreFactory)
    client_reference = factory.Sequence(lambda n: f"client-{n}")
    subtotal_fen = 1000
    total_fen = 1000
