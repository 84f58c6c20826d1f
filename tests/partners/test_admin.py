"""The partners' admin: HQ only; keys issued once, revoked, secrets rotated through services."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from partners import services
from partners.models import Partner, PartnerApiKey, PartnerOrder, PartnerPush, RoutingRule

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english_pages(client):
    """English pages, so that messages can be asserted word for word."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


INLINE = {
    "api_keys-TOTAL_FORMS": "0",
    "api_keys-INITIAL_FORMS": "0",
    "rules-TOTAL_FORMS": "0",
    "rules-INITIAL_FORMS": "0",
}


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def act(client, model: str, action: str, *objects):
    return client.post(
        reverse(f"admin:partners_{model}_changelist"),
        {"action": action, "_selected_action": [obj.pk for obj in objects]},
    )


def test_hq_lists_partners_with_their_live_keys(client, hq_user, courier, channel):
    services.partner_api_key_issue(partner=courier)
    _raw, revoked = services.partner_api_key_issue(partner=courier)
    services.partner_api_key_revoke(key=revoked)
    client.force_login(hq_user)

    response = client.get(reverse("admin:partners_partner_changelist"))

    assert response.status_code == 200
    rows = [(p.name, p.kind) for p in response.context["cl"].result_list]
    assert rows == [("美团闪购", "sales_channel"), ("顺丰同城", "fulfilment")]
    page = response.content.decode()
    assert '<td class="field-live_keys">1</td>' in page
    assert '<td class="field-live_keys">0</td>' in page


@pytest.mark.parametrize("user", ["manager_a", "clerk_a"])
def test_store_staff_cannot_see_partners(client, request, user, courier):
    client.force_login(request.getfixturevalue(user))

    assert client.get(reverse("admin:partners_partner_changelist")).status_code == 403
    assert client.get(reverse("admin:partners_partnerapikey_changelist")).status_code == 403
    index = client.get(reverse("admin:index")).content.decode()
    assert "/admin/partners/" not in index


def test_hq_adds_a_partner_and_sees_its_secret_once(client, hq_user, store_a, english):
    client.force_login(hq_user)

    response = client.post(
        reverse("admin:partners_partner_add"),
        {
            "name": "达达快送",
            "kind": "fulfilment",
            "active": "on",
            "webhook_url": "dada.example/hooks",
            "stores": [store_a.pk],
            "cities": '["上海市"]',
            **INLINE,
        },
    )

    assert response.status_code == 302
    partner = Partner.objects.get(name="达达快送")
    assert (partner.kind, partner.webhook_url, partner.cities) == (
        "fulfilment",
        "https://dada.example/hooks",
        ["上海市"],
    )
    assert list(partner.stores.all()) == [store_a]
    secret = services.partner_signing_secret(partner=partner)
    assert messages_of(response)[0] == (
        f"Signing secret of 达达快送: {secret} — shown this once, copy it now."
    )


def test_changing_a_partner_keeps_its_secret(client, hq_user, courier, store_b):
    secret = services.partner_signing_secret(partner=courier)
    client.force_login(hq_user)

    response = client.post(
        reverse("admin:partners_partner_change", args=[courier.pk]),
        {
            "name": "顺丰同城",
            "kind": "both",
            "webhook_url": "https://partner.example/v2/hooks",
            "stores": [store_b.pk],
            "cities": "[]",
            **INLINE,
        },
    )

    assert response.status_code == 302
    courier.refresh_from_db()
    assert (courier.kind, courier.active, courier.webhook_url, courier.cities) == (
        "both",
        False,
        "https://partner.example/v2/hooks",
        [],
    )
    assert list(courier.stores.all()) == [store_b]
    assert services.partner_signing_secret(partner=courier) == secret
    assert all("secret" not in message for message in messages_of(response))


def test_the_keys_inline_is_read_only(client, hq_user, courier):
    _raw, key = services.partner_api_key_issue(partner=courier)
    client.force_login(hq_user)

    response = client.get(reverse("admin:partners_partner_change", args=[courier.pk]))

    inlines = {inline.opts.model: inline for inline in response.context["inline_admin_formsets"]}
    inline = inlines[PartnerApiKey]
    assert inline.has_add_permission is False
    assert inline.has_change_permission is False
    assert inline.has_delete_permission is False
    page = response.content.decode()
    assert key.prefix in page
    assert key.key_hash not in page
    assert courier.signing_secret_encrypted not in page


def test_issue_action_shows_the_raw_key_once_and_it_works(client, hq_user, courier, english):
    client.force_login(hq_user)

    response = act(client, "partner", "issue_api_key", courier)

    assert response.status_code == 302
    key = PartnerApiKey.objects.get(partner=courier)
    [message] = messages_of(response)
    raw = message.removeprefix("New API key of 顺丰同城: ").removesuffix(
        " — shown this once, copy it now."
    )
    assert raw.startswith(key.prefix)
    assert len(raw) == 47
    assert services.partner_key_authenticate(raw).pk == key.pk


def test_issue_action_for_an_inactive_partner_issues_nothing(client, hq_user, courier, english):
    courier.active = False
    services.partner_save(partner=courier)
    client.force_login(hq_user)

    response = act(client, "partner", "issue_api_key", courier)

    assert messages_of(response) == ["顺丰同城 is not active: activate it before issuing keys."]
    assert PartnerApiKey.objects.count() == 0


def test_rotate_action_shows_the_new_secret_once(client, hq_user, courier, english):
    old = services.partner_signing_secret(partner=courier)
    client.force_login(hq_user)

    response = act(client, "partner", "rotate_signing_secret", courier)

    courier.refresh_from_db()
    new = services.partner_signing_secret(partner=courier)
    assert new != old
    assert messages_of(response) == [
        f"New signing secret of 顺丰同城: {new} — shown this once, copy it now."
    ]


def test_revoke_action_revokes_live_keys_and_leaves_revoked_ones(client, hq_user, courier, english):
    _raw, live = services.partner_api_key_issue(partner=courier)
    _raw, revoked = services.partner_api_key_issue(partner=courier)
    revoked_at = services.partner_api_key_revoke(key=revoked).revoked_at
    client.force_login(hq_user)

    response = act(client, "partnerapikey", "revoke_keys", live, revoked)

    live.refresh_from_db()
    revoked.refresh_from_db()
    assert live.revoked_at is not None
    assert revoked.revoked_at == revoked_at
    assert messages_of(response) == ["1 key revoked.", "1 key was already revoked."]


@pytest.mark.parametrize(
    ("model", "action"),
    [
        ("partner", "issue_api_key"),
        ("partner", "rotate_signing_secret"),
        ("partnerapikey", "revoke_keys"),
    ],
)
def test_store_staff_actions_change_nothing(client, manager_a, courier, model, action):
    _raw, key = services.partner_api_key_issue(partner=courier)
    secret = courier.signing_secret_encrypted
    client.force_login(manager_a)

    response = act(client, model, action, key if model == "partnerapikey" else courier)

    assert response.status_code == 403
    courier.refresh_from_db()
    key.refresh_from_db()
    assert courier.signing_secret_encrypted == secret
    assert PartnerApiKey.objects.count() == 1
    assert key.revoked_at is None


def test_nobody_deletes_or_adds_keys_in_the_admin(client, hq_user, courier):
    _raw, key = services.partner_api_key_issue(partner=courier)
    client.force_login(hq_user)

    assert client.get(reverse("admin:partners_partnerapikey_add")).status_code == 403
    response = client.post(
        reverse("admin:partners_partner_delete", args=[courier.pk]), {"post": "yes"}
    )

    assert response.status_code == 403
    assert Partner.objects.filter(pk=courier.pk).exists()
    assert PartnerApiKey.objects.filter(pk=key.pk).exists()


def test_hq_adds_a_routing_rule_and_a_bad_channel_is_refused(client, hq_user, courier, store_a):
    client.force_login(hq_user)
    url = reverse("admin:partners_routingrule_add")
    form = {
        "name": "门店无自配送",
        "partner": courier.pk,
        "priority": "20",
        "active": "on",
        "store_kind": "store",
        "without_ship_from_store": "on",
        "stores": [store_a.pk],
    }

    refused = client.post(url, {**form, "channels": '["mini_shop", "teleport"]'})
    added = client.post(url, {**form, "channels": '["mini_shop", "h5"]'})

    assert refused.status_code == 200
    assert "A list of channels among: counter, h5, mini_shop, partner." in (
        refused.content.decode()
    )
    assert added.status_code == 302
    rule = RoutingRule.objects.get()
    assert (
        rule.name,
        rule.partner,
        rule.priority,
        rule.store_kind,
        rule.without_ship_from_store,
        rule.channels,
        list(rule.stores.all()),
    ) == ("门店无自配送", courier, 20, "store", True, ["mini_shop", "h5"], [store_a])


def test_rules_are_switched_off_not_deleted(client, hq_user, courier):
    rule = RoutingRule.objects.create(name="全部", partner=courier)
    client.force_login(hq_user)

    response = client.post(reverse("admin:partners_routingrule_delete", args=[rule.pk]))

    assert response.status_code == 403
    assert RoutingRule.objects.filter(pk=rule.pk).exists()


@pytest.mark.parametrize("model", ["routingrule", "partnerorder", "partnerpush"])
def test_store_staff_see_no_routing_orders_or_pushes(client, manager_a, model):
    client.force_login(manager_a)

    response = client.get(reverse(f"admin:partners_{model}_changelist"))

    assert response.status_code == 403


def test_hq_reads_partner_orders_and_pushes_but_changes_nothing(
    client, hq_user, courier, place_paid, warehouse, warehouse_rule
):
    courier.webhook_url = ""
    courier.save(update_fields=["webhook_url"])
    order = place_paid(warehouse)
    link = PartnerOrder.objects.get(order=order)
    push = PartnerPush.objects.create(
        partner=courier,
        event_id="6f1c5f8e-0000-4000-8000-000000000001",
        event_type="order.paid",
        order_number=order.number,
        status="failed",
        status_code=400,
        answer="HTTP 400: unknown store",
    )
    client.force_login(hq_user)

    orders_page = client.get(reverse("admin:partners_partnerorder_changelist"))
    pushes_page = client.get(reverse("admin:partners_partnerpush_changelist"))
    change = client.post(
        reverse("admin:partners_partnerpush_change", args=[push.pk]), {"status": "delivered"}
    )

    assert orders_page.status_code == 200
    assert order.number in orders_page.content.decode()
    assert pushes_page.status_code == 200
    assert "HTTP 400" not in pushes_page.content.decode()  # the answer is on the row's page
    assert change.status_code == 403
    push.refresh_from_db()
    assert push.status == "failed"
    assert link.role == "fulfil"
