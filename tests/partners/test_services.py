"""Partners, their API keys and signing secrets (partners.services)."""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from cryptography.fernet import InvalidToken
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError

from partners import services, signing
from partners.models import Partner, PartnerApiKey
from retail.errors import BusinessError

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


@time_machine.travel(NOW, tick=False)
def test_create_keeps_the_secret_encrypted_and_returns_it_raw(store_a):
    partner, raw = services.partner_create(
        name="顺丰同城",
        kind="both",
        webhook_url="https://partner.example/hooks",
        stores=[store_a],
        cities=["上海市", "杭州市"],
    )

    partner.refresh_from_db()
    assert (partner.name, partner.kind, partner.active, partner.webhook_url, partner.cities) == (
        "顺丰同城",
        "both",
        True,
        "https://partner.example/hooks",
        ["上海市", "杭州市"],
    )
    assert list(partner.stores.values_list("code", flat=True)) == ["SH001"]
    assert len(raw) == 43
    assert raw not in partner.signing_secret_encrypted
    assert partner.signing_secret_encrypted.startswith("gAAAAA")
    assert services.partner_signing_secret(partner=partner) == raw
    assert partner.signing_secret_rotated_at == NOW


def test_each_partner_has_its_own_secret(courier, channel):
    assert services.partner_signing_secret(partner=courier) != services.partner_signing_secret(
        partner=channel
    )


def test_the_secret_cannot_be_read_under_another_key(courier, settings):
    settings.PARTNER_SECRET_KEY = "another-key"

    with pytest.raises(InvalidToken):
        services.partner_signing_secret(partner=courier)


def test_without_partner_secret_key_and_debug_off_nothing_is_encrypted(settings):
    settings.PARTNER_SECRET_KEY = ""
    settings.DEBUG = False

    with pytest.raises(ImproperlyConfigured, match="PARTNER_SECRET_KEY must be set"):
        services.partner_create(name="顺丰同城", kind="fulfilment")

    assert Partner.objects.count() == 0


def test_with_debug_on_the_key_derives_from_secret_key(settings):
    settings.PARTNER_SECRET_KEY = ""
    settings.DEBUG = True
    partner, raw = services.partner_create(name="顺丰同城", kind="fulfilment")

    settings.DEBUG = False
    settings.PARTNER_SECRET_KEY = settings.SECRET_KEY

    assert services.partner_signing_secret(partner=partner) == raw


def test_the_database_refuses_an_unknown_kind():
    with pytest.raises(IntegrityError):
        Partner.objects.create(name="X", kind="courier", signing_secret_encrypted="x")


@time_machine.travel(NOW, tick=False)
def test_rotate_replaces_the_secret(courier):
    old = services.partner_signing_secret(partner=courier)

    with time_machine.travel(datetime(2026, 11, 26, 2, 0, tzinfo=UTC), tick=False):
        raw = services.partner_signing_secret_rotate(partner=courier)

    courier.refresh_from_db()
    assert raw != old
    assert services.partner_signing_secret(partner=courier) == raw
    assert courier.signing_secret_rotated_at == datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def test_after_a_rotation_pushes_are_signed_with_both_secrets_for_a_day(courier, settings):
    settings.PARTNER_SECRET_ROTATION_HOURS = 24
    first = services.partner_signing_secret(partner=courier)
    assert services.partner_push_secrets(partner=courier) == (first, ())
    t0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)

    with time_machine.travel(t0, tick=False):
        second = services.partner_signing_secret_rotate(partner=courier)
    courier.refresh_from_db()
    within = services.partner_push_secrets(partner=courier, now=t0 + timedelta(hours=23))
    after = services.partner_push_secrets(partner=courier, now=t0 + timedelta(hours=24))
    body = b'{"id":"evt_9"}'
    header = signing.signed_headers(second, "order.paid", "evt_9", 1_795_000_000, body, (first,))

    assert within == (second, (first,))
    assert after == (second, ())
    assert header["X-Partner-Signature"] == (
        f"{signing.sign(second, 1_795_000_000, body)}, {signing.sign(first, 1_795_000_000, body)}"
    )
    # A partner still on the old secret, and one already on the new, both accept the push.
    assert signing.verify(first, header, body, now=1_795_000_000) is None
    assert signing.verify(second, header, body, now=1_795_000_000) is None


def test_partner_save_keeps_the_secret_of_a_partner_it_changes(courier):
    secret = services.partner_signing_secret(partner=courier)
    courier.name = "顺丰"
    courier.active = False

    assert services.partner_save(partner=courier) is None

    courier.refresh_from_db()
    assert (courier.name, courier.active) == ("顺丰", False)
    assert services.partner_signing_secret(partner=courier) == secret


@time_machine.travel(NOW, tick=False)
def test_issue_stores_only_the_hash_and_the_prefix(courier, django_assert_num_queries):
    with django_assert_num_queries(1):
        raw, key = services.partner_api_key_issue(partner=courier)

    key.refresh_from_db()
    assert raw.startswith("ptn_")
    assert len(raw) == 47
    assert key.prefix == raw[:12]
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert (key.partner_id, key.created_at, key.last_used_at, key.revoked_at) == (
        courier.pk,
        NOW,
        None,
        None,
    )
    assert not PartnerApiKey.objects.filter(key_hash=raw).exists()


def test_a_partner_holds_several_keys(courier):
    first, _ = services.partner_api_key_issue(partner=courier)
    second, _ = services.partner_api_key_issue(partner=courier)

    assert first != second
    assert courier.api_keys.count() == 2


def test_an_inactive_partner_gets_no_key(courier, english):
    courier.active = False
    services.partner_save(partner=courier)

    with pytest.raises(BusinessError) as refused:
        services.partner_api_key_issue(partner=courier)

    assert (refused.value.code, refused.value.status_code, refused.value.message) == (
        "partner_inactive",
        409,
        "顺丰同城 is not active: activate it before issuing keys.",
    )
    assert PartnerApiKey.objects.count() == 0


@time_machine.travel(NOW, tick=False)
def test_revoke(courier):
    _raw, key = services.partner_api_key_issue(partner=courier)

    services.partner_api_key_revoke(key=key)

    key.refresh_from_db()
    assert key.revoked_at == NOW


def test_revoking_twice_is_refused_and_keeps_the_first_time(courier, english):
    _raw, key = services.partner_api_key_issue(partner=courier)
    with time_machine.travel(NOW, tick=False):
        services.partner_api_key_revoke(key=key)

    with (
        time_machine.travel(datetime(2026, 11, 26, tzinfo=UTC), tick=False),
        pytest.raises(BusinessError) as refused,
    ):
        services.partner_api_key_revoke(key=key)

    assert (refused.value.code, refused.value.status_code) == ("key_already_revoked", 409)
    assert refused.value.message == f"The key {key.prefix}… was already revoked."
    key.refresh_from_db()
    assert key.revoked_at == NOW


def test_authenticate_finds_the_key_and_its_partner(courier, django_assert_num_queries):
    raw, key = services.partner_api_key_issue(partner=courier)

    with time_machine.travel(NOW, tick=False), django_assert_num_queries(2):
        found = services.partner_key_authenticate(raw)

    assert (found.pk, found.partner.name, found.last_used_at) == (key.pk, "顺丰同城", NOW)


def test_last_used_is_written_at_most_once_a_minute(courier, django_assert_num_queries):
    raw, key = services.partner_api_key_issue(partner=courier)
    with time_machine.travel(NOW, tick=False):
        services.partner_key_authenticate(raw)

    with (
        time_machine.travel(datetime(2026, 11, 25, 2, 0, 59, tzinfo=UTC), tick=False),
        django_assert_num_queries(1),
    ):
        services.partner_key_authenticate(raw)
    key.refresh_from_db()
    assert key.last_used_at == NOW

    with (
        time_machine.travel(datetime(2026, 11, 25, 2, 1, tzinfo=UTC), tick=False),
        django_assert_num_queries(2),
    ):
        services.partner_key_authenticate(raw)
    key.refresh_from_db()
    assert key.last_used_at == datetime(2026, 11, 25, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "code", "message"),
    [
        ("wrong", "key_invalid", "This API key is not valid."),
        ("revoked", "key_revoked", "This API key has been revoked."),
        ("inactive", "partner_inactive", "This partner is not active."),
    ],
)
def test_authenticate_refuses(courier, english, given, code, message):
    raw, key = services.partner_api_key_issue(partner=courier)
    if given == "wrong":
        raw = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    elif given == "revoked":
        services.partner_api_key_revoke(key=key)
    else:
        courier.active = False
        services.partner_save(partner=courier)

    with pytest.raises(BusinessError) as refused:
        services.partner_key_authenticate(raw)

    assert (refused.value.code, refused.value.status_code, refused.value.message) == (
        code,
        401,
        message,
    )
    key.refresh_from_db()
    assert key.last_used_at is None
