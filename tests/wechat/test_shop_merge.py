"""A merge carries the shop's rows too: tokens, addresses and the cart go to the survivor."""

import pytest

from members.models import MemberMerge
from members.services.identity import (
    member_bind_phone,
    member_login_wechat,
    member_signup_at_counter,
)
from tests import factories
from wechat.models import Address, Cart, CartLine, ShopperToken
from wechat.services.auth import token_issue

pytestmark = pytest.mark.django_db


def test_a_merged_members_tokens_addresses_and_cart_follow_her(store_a):
    counter = member_signup_at_counter(mobile="13912345678", name="王芳", store=store_a, actor=None)
    online = member_login_wechat(app_id="wx-app", openid="o-merge")
    water, milk, tea = factories.SKUFactory.create_batch(3)
    kept = Address.objects.create(
        member=counter,
        name="王芳",
        mobile="13912345678",
        province="上海市",
        city="上海市",
        district="静安区",
        detail="愚园路1号",
        is_default=True,
    )
    moved = Address.objects.create(
        member=online,
        name="王芳",
        mobile="13912345678",
        province="上海市",
        city="上海市",
        district="徐汇区",
        detail="天钥桥路2号",
        is_default=True,
    )
    mine = Cart.objects.create(member=counter, store=store_a)
    CartLine.objects.create(cart=mine, sku=water, quantity=1)
    theirs = Cart.objects.create(member=online, store=store_a)
    CartLine.objects.create(cart=theirs, sku=water, quantity=2)
    CartLine.objects.create(cart=theirs, sku=milk, quantity=3)
    _raw, token = token_issue(member=online)

    survivor = member_bind_phone(member=online, mobile="13912345678")

    assert survivor.pk == counter.pk
    assert ShopperToken.objects.get(pk=token.pk).member_id == counter.pk
    assert list(Address.objects.order_by("pk").values_list("pk", "member", "is_default")) == [
        (kept.pk, counter.pk, True),
        (moved.pk, counter.pk, False),
    ]
    assert list(Cart.objects.values_list("member", flat=True)) == [counter.pk]
    assert sorted(CartLine.objects.values_list("sku", "quantity")) == sorted(
        [(water.pk, 3), (milk.pk, 3)]
    )
    assert not CartLine.objects.filter(sku=tea).exists()
    assert {
        key: MemberMerge.objects.get().moved[key] for key in ("shop_tokens", "addresses", "cart")
    } == {"shop_tokens": 1, "addresses": 1, "cart": 2}
