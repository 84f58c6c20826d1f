"""Stock in the admin, page by page, as each role sees it: scoped to the staff member's stores,
numbers never typed, documents acted on through buttons that call the services."""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from inventory.models import (
    Reservation,
    StockCount,
    StockCountLine,
    StockItem,
    StockMovement,
    Transfer,
    TransferLine,
)
from inventory.operations import (
    stock_count_apply,
    stock_count_create,
    stock_count_set_line,
    transfer_create,
    transfer_receive,
    transfer_send,
)
from inventory.services import (
    ReserveLine,
    StockLine,
    stock_receive,
    stock_reserve,
    stock_write_off,
)
from retail.models import Store
from tests.factories import SKUFactory, StaffRoleFactory, StockItemFactory, StoreFactory

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def manager_b(store_b):
    return StaffRoleFactory(role="store_manager", store=store_b).user


@pytest.fixture
def store_c(db):
    return StoreFactory(code="SH003", name="徐家汇店")


@pytest.fixture
def water(db):
    return SKUFactory(code="WATER-550", product__name="矿泉水", attributes={"规格": "550ml"})


@pytest.fixture
def tea(db):
    return SKUFactory(code="TEA-500", product__name="绿茶", attributes={"规格": "500ml"})


# --- Helpers -----------------------------------------------------------------------------------


def browser(user) -> Client:
    """A signed-in client of its own per user, reading the admin in English (its messages are
    asserted word for word); messages one user left unread do not reach the next."""
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def url(name: str, *args) -> str:
    return reverse(f"admin:inventory_{name}", args=args)


def stocked(store, sku, quantity: int, *, actor=None, reference: str = "") -> StockItem:
    stock_receive(
        store=store,
        lines=[StockLine(sku, quantity)],
        idempotency_key=f"seed-{store.pk}-{sku.pk}",
        actor=actor,
        reference=reference,
    )
    return StockItem.objects.get(store=store, sku=sku)


def numbers(store, sku) -> tuple[int, int] | None:
    """(on hand, reserved) of a SKU in a store; None when the store never had a row for it."""
    item = StockItem.objects.filter(store=store, sku=sku).first()
    return None if item is None else (item.on_hand, item.reserved)


def listed(response) -> list:
    return list(response.context["cl"].result_list)


def flashed(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def run_action(client: Client, model: str, action: str, objects):
    return client.post(
        url(f"{model}_changelist"),
        {"action": action, "_selected_action": [obj.pk for obj in objects], "index": "0"},
    )


def line_forms(rows: list[dict[str, object]], *, initial: int = 0) -> dict[str, object]:
    """The inline formset's POST data: management form plus one entry per row."""
    data: dict[str, object] = {
        "lines-TOTAL_FORMS": str(len(rows)),
        "lines-INITIAL_FORMS": str(initial),
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        data.update({f"lines-{index}-{field}": value for field, value in row.items()})
    return data


def cells(response, column: str) -> list[str]:
    """The read-only values an inline table shows in one column, top to bottom."""
    pattern = rf'<td class="field-{column}">\s*<p>(.*?)</p>'
    return re.findall(pattern, response.content.decode())


def ledger_size() -> int:
    return StockMovement.objects.count()


def draft(from_store, to_store, lines) -> Transfer:
    return transfer_create(from_store=from_store, to_store=to_store, lines=lines, actor=None)


def in_transit(from_store, to_store, lines) -> Transfer:
    transfer = draft(from_store, to_store, lines)
    transfer_send(transfer=transfer, actor=None)
    transfer.refresh_from_db()
    return transfer


def transfer_lines(transfer: Transfer) -> list[tuple[str, int, int | None]]:
    return list(
        transfer.lines.order_by("sku__code").values_list(
            "sku__code", "quantity_sent", "quantity_received"
        )
    )


def count_lines(count: StockCount) -> list[tuple[str, int, int | None]]:
    return list(count.lines.order_by("sku__code").values_list("sku__code", "counted", "expected"))


# --- Stock rows --------------------------------------------------------------------------------


def test_stock_list_shows_the_managers_store_only(manager_a, store_a, store_b, water):
    mine = stocked(store_a, water, 24)
    stocked(store_b, water, 5)
    client = browser(manager_a)

    response = client.get(url("stockitem_changelist"))

    assert response.status_code == 200
    assert listed(response) == [mine]
    # One store leaves nothing to filter by: the filter hides itself.
    assert response.context["cl"].filter_specs == []


def test_stock_list_shows_what_each_channel_may_sell(manager_a, store_a, water):
    stocked(store_a, water, 24)
    StockItem.objects.filter(store=store_a, sku=water).update(safety_stock=5)
    stock_reserve(store=store_a, lines=[ReserveLine(water, 2, "SO1001/1")])
    client = browser(manager_a)

    page = client.get(url("stockitem_changelist")).content.decode()

    assert '<td class="field-on_hand">24</td>' in page
    assert '<td class="field-reserved">2</td>' in page
    assert '<td class="field-available">22</td>' in page
    assert '<td class="field-available_online">17</td>' in page


def test_the_store_filter_offers_only_the_users_stores(manager_a, store_a, store_b, store_c, water):
    StaffRoleFactory(user=manager_a, role="store_manager", store=store_c)
    in_a = stocked(store_a, water, 24)
    stocked(store_b, water, 5)
    in_c = stocked(store_c, water, 7)
    client = browser(manager_a)

    both = client.get(url("stockitem_changelist"))
    only_c = client.get(url("stockitem_changelist"), {"store__id__exact": store_c.pk})

    assert listed(both) == [in_a, in_c]
    [store_filter] = both.context["cl"].filter_specs
    assert store_filter.lookup_choices == [
        (store_a.pk, "SH001 静安寺店"),
        (store_c.pk, "SH003 徐家汇店"),
    ]
    assert listed(only_c) == [in_c]


def test_hq_sees_every_stock_row_and_filters_by_store(hq_user, store_a, store_b, water):
    in_a = stocked(store_a, water, 24)
    in_b = stocked(store_b, water, 5)
    client = browser(hq_user)

    everything = client.get(url("stockitem_changelist"))
    only_b = client.get(url("stockitem_changelist"), {"store__id__exact": store_b.pk})

    assert listed(everything) == [in_a, in_b]
    assert listed(only_b) == [in_b]


def test_stock_list_searches_by_code_barcode_and_name_within_the_users_stores(
    manager_a, store_a, store_b, water, tea
):
    in_a = stocked(store_a, water, 24)
    stocked(store_a, tea, 6)
    stocked(store_b, water, 5)
    client = browser(manager_a)

    found = [
        listed(client.get(url("stockitem_changelist"), {"q": term}))
        for term in ["WATER", water.barcode, "矿泉水"]
    ]

    assert found == [[in_a], [in_a], [in_a]]


def test_another_stores_row_cannot_be_opened_or_tuned(manager_a, store_b, water):
    theirs = stocked(store_b, water, 5)
    client = browser(manager_a)

    opened = client.get(url("stockitem_change", theirs.pk))
    posted = client.post(
        url("stockitem_change", theirs.pk),
        {"safety_stock": "3", "lead_time_days": "2", "review_days": "7", "pack_size": "1"},
    )

    # Django answers an object outside the queryset with a redirect to the index.
    assert (opened.status_code, opened.url) == (302, reverse("admin:index"))
    assert (posted.status_code, posted.url) == (302, reverse("admin:index"))
    theirs.refresh_from_db()
    assert (theirs.on_hand, theirs.safety_stock) == (5, 0)


def test_stock_page_shows_numbers_read_only_and_the_latest_movements(manager_a, store_a, water):
    with time_machine.travel(datetime(2025, 3, 1, 10, 0, tzinfo=SHANGHAI), tick=False):
        item = stocked(store_a, water, 24, actor=manager_a, reference="DN-1")
    with time_machine.travel(datetime(2025, 3, 2, 18, 30, 5, tzinfo=SHANGHAI), tick=False):
        stock_write_off(store=store_a, lines=[StockLine(water, 3)], idempotency_key="broken-1")
    client = browser(manager_a)

    response = client.get(url("stockitem_change", item.pk))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert list(form.fields) == ["safety_stock", "lead_time_days", "review_days", "pack_size"]
    page = response.content.decode()
    newest = "<tr><td>2025-03-02 18:30:05</td><td>damage write-off</td><td>-3</td><td>21</td>"
    oldest = (
        "<tr><td>2025-03-01 10:00:00</td><td>goods receipt</td><td>+24</td><td>24</td>"
        f"<td>{manager_a.username}</td><td>DN-1</td></tr>"
    )
    assert f"{newest}<td>—</td><td>—</td></tr>{oldest}" in page
    all_movements = f"{url('stockmovement_changelist')}?stock_item__id__exact={item.pk}"
    assert f'<a href="{all_movements}">All movements of this item</a>' in page


def test_the_stock_page_shows_the_fifty_latest_movements(hq_user, store_a, water):
    item = StockItemFactory(store=store_a, sku=water)
    for quantity in range(1, 52):
        stock_receive(
            store=store_a, lines=[StockLine(water, quantity)], idempotency_key=f"DN-{quantity}"
        )
    client = browser(hq_user)

    page = client.get(url("stockitem_change", item.pk)).content.decode()

    assert page.count("<td>goods receipt</td>") == 50
    assert "<td>goods receipt</td><td>+51</td><td>1326</td>" in page
    assert "<td>goods receipt</td><td>+2</td><td>3</td>" in page
    assert "<td>goods receipt</td><td>+1</td><td>1</td>" not in page


def test_a_stock_row_without_movements_says_so(manager_a, store_a, water):
    item = StockItemFactory(store=store_a, sku=water)
    client = browser(manager_a)

    response = client.get(url("stockitem_change", item.pk))

    assert response.status_code == 200
    assert "No movements yet." in response.content.decode()


def test_the_movements_link_lists_that_items_rows_of_the_users_stores(
    manager_a, store_a, store_b, water, tea
):
    mine = stocked(store_a, water, 24)
    stocked(store_a, tea, 6)
    theirs = stocked(store_b, water, 5)
    client = browser(manager_a)

    own = client.get(url("stockmovement_changelist"), {"stock_item__id__exact": mine.pk})
    other = client.get(url("stockmovement_changelist"), {"stock_item__id__exact": theirs.pk})

    assert [(m.stock_item_id, m.quantity) for m in listed(own)] == [(mine.pk, 24)]
    assert (other.status_code, listed(other)) == (200, [])


def test_manager_tunes_a_rows_settings_but_not_its_numbers(manager_a, store_a, water):
    item = stocked(store_a, water, 24)
    client = browser(manager_a)

    response = client.post(
        url("stockitem_change", item.pk),
        {
            "safety_stock": "6",
            "lead_time_days": "3",
            "review_days": "14",
            "pack_size": "12",
            "on_hand": "999",
            "reserved": "5",
        },
    )

    assert (response.status_code, response.url) == (302, url("stockitem_changelist"))
    item.refresh_from_db()
    assert (item.on_hand, item.reserved) == (24, 0)
    assert (item.safety_stock, item.lead_time_days, item.review_days, item.pack_size) == (
        6,
        3,
        14,
        12,
    )
    assert ledger_size() == 1
    entry = LogEntry.objects.get(object_id=str(item.pk))
    assert (entry.action_flag, entry.user) == (CHANGE, manager_a)


@pytest.mark.parametrize(
    ("field", "value", "errors"),
    [
        # The database's own rules, checked by the form before the service is asked.
        (
            "safety_stock",
            "-1",
            {"__all__": ["Constraint “stockitem_safety_stock_gte_0” is violated."]},
        ),
        ("pack_size", "0", {"__all__": ["Constraint “stockitem_pack_size_gte_1” is violated."]}),
        (
            "review_days",
            "-2",
            {"review_days": ["Ensure this value is greater than or equal to 0."]},
        ),
    ],
)
def test_a_setting_out_of_range_is_a_form_error_and_changes_nothing(
    manager_a, store_a, water, field, value, errors
):
    item = stocked(store_a, water, 24)
    form = {"safety_stock": "2", "lead_time_days": "2", "review_days": "7", "pack_size": "1"}
    client = browser(manager_a)

    response = client.post(url("stockitem_change", item.pk), {**form, field: value})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == errors
    item.refresh_from_db()
    assert (item.safety_stock, item.review_days, item.pack_size, item.on_hand) == (0, 7, 1, 24)


def test_clerk_views_a_stock_row_but_cannot_tune_it(clerk_a, store_a, water):
    item = stocked(store_a, water, 24)
    client = browser(clerk_a)

    page = client.get(url("stockitem_change", item.pk))
    posted = client.post(
        url("stockitem_change", item.pk),
        {"safety_stock": "6", "lead_time_days": "3", "review_days": "14", "pack_size": "12"},
    )

    assert page.status_code == 200
    assert list(page.context["adminform"].form.fields) == []
    assert posted.status_code == 403
    item.refresh_from_db()
    assert (item.safety_stock, item.pack_size, item.on_hand) == (0, 1, 24)


def test_nobody_adds_or_deletes_a_stock_row(hq_user, store_a, water):
    item = stocked(store_a, water, 24)
    client = browser(hq_user)

    added = client.get(url("stockitem_add"))
    deleted = client.post(url("stockitem_delete", item.pk), {"post": "yes"})

    assert (added.status_code, deleted.status_code) == (403, 403)
    assert StockItem.objects.filter(pk=item.pk).exists()


@pytest.mark.parametrize("rows", [2, 20])
def test_stock_list_queries_do_not_grow_with_rows(
    manager_a, store_a, store_b, django_assert_num_queries, rows
):
    for _ in range(rows):
        StockItemFactory(store=store_a, on_hand=10, reserved=2)
        StockItemFactory(store=store_b, on_hand=10)
    client = browser(manager_a)

    # Session, user, two for Django's own permissions, staff roles, the store filter's choices,
    # two counts (filtered and total) and the page of rows with their store, SKU and product.
    with django_assert_num_queries(9):
        response = client.get(url("stockitem_changelist"))

    assert len(listed(response)) == rows


# --- The ledger and reservations: records nobody edits ----------------------------------------


@pytest.fixture
def reservation(store_a, water):
    stocked(store_a, water, 24)
    [held] = stock_reserve(store=store_a, lines=[ReserveLine(water, 2, "SO1001/1")])
    return held


@pytest.mark.parametrize("model", ["stockmovement", "reservation"])
def test_ledger_and_reservations_are_read_only_even_for_hq(hq_user, reservation, model):
    record = StockMovement.objects.get() if model == "stockmovement" else reservation
    client = browser(hq_user)

    listing = client.get(url(f"{model}_changelist"))
    page = client.get(url(f"{model}_change", record.pk))
    added = client.get(url(f"{model}_add"))
    changed = client.post(url(f"{model}_change", record.pk), {"quantity": "99"})
    deleted = client.post(url(f"{model}_delete", record.pk), {"post": "yes"})

    assert (listing.status_code, page.status_code) == (200, 200)
    assert page.context["has_change_permission"] is False
    assert list(page.context["adminform"].form.fields) == []
    assert (added.status_code, changed.status_code, deleted.status_code) == (403, 403, 403)
    assert list(StockMovement.objects.values_list("quantity", "reason")) == [(24, "receipt")]
    assert list(Reservation.objects.values_list("quantity", "status")) == [(2, "held")]


def test_ledger_list_is_scoped_to_the_users_stores(manager_a, store_a, store_b, water):
    stocked(store_a, water, 24)
    stocked(store_b, water, 5)
    theirs = StockMovement.objects.get(stock_item__store=store_b)
    client = browser(manager_a)

    response = client.get(url("stockmovement_changelist"))
    opened = client.get(url("stockmovement_change", theirs.pk))

    assert [(m.stock_item.store.code, m.quantity) for m in listed(response)] == [("SH001", 24)]
    assert "矿泉水 550ml" in response.content.decode()
    assert (opened.status_code, opened.url) == (302, reverse("admin:index"))


def test_reservation_list_is_scoped_to_the_users_stores(clerk_a, reservation, store_b, water):
    stocked(store_b, water, 5)
    [theirs] = stock_reserve(store=store_b, lines=[ReserveLine(water, 1, "SO2002/1")])
    client = browser(clerk_a)

    response = client.get(url("reservation_changelist"))
    opened = client.get(url("reservation_change", theirs.pk))

    assert listed(response) == [reservation]
    assert "SO1001/1" in response.content.decode()
    assert (opened.status_code, opened.url) == (302, reverse("admin:index"))


# --- Transfers ---------------------------------------------------------------------------------


def test_transfer_add_form_sends_from_own_stores_to_any_open_store(
    manager_a, store_a, store_b, store_c
):
    Store.objects.filter(pk=store_c.pk).update(active=False)
    client = browser(manager_a)

    response = client.get(url("transfer_add"))

    assert response.status_code == 200
    fields = response.context["adminform"].form.fields
    assert list(fields["from_store"].queryset) == [store_a]
    assert list(fields["to_store"].queryset) == [store_a, store_b]
    [lines] = response.context["inline_admin_formsets"]
    assert lines.formset.min_num == 1
    assert list(lines.formset.form.base_fields) == ["sku", "quantity_sent"]


def test_manager_creates_a_draft_transfer_with_lines(manager_a, store_a, store_b, water, tea):
    stocked(store_a, water, 24)
    client = browser(manager_a)

    response = client.post(
        url("transfer_add"),
        {
            "from_store": store_a.pk,
            "to_store": store_b.pk,
            "note": "周末补货",
            **line_forms(
                [
                    {"sku": water.pk, "quantity_sent": "10"},
                    {"sku": tea.pk, "quantity_sent": "4"},
                ]
            ),
        },
    )

    assert (response.status_code, response.url) == (302, url("transfer_changelist"))
    transfer = Transfer.objects.get()
    assert (transfer.from_store, transfer.to_store, transfer.note) == (store_a, store_b, "周末补货")
    assert (transfer.status, transfer.created_by, transfer.sent_at) == ("draft", manager_a, None)
    assert transfer_lines(transfer) == [("TEA-500", 4, None), ("WATER-550", 10, None)]
    # A draft moves nothing.
    assert (numbers(store_a, water), ledger_size()) == ((24, 0), 1)
    entry = LogEntry.objects.get(object_id=str(transfer.pk))
    assert (entry.action_flag, entry.user) == (ADDITION, manager_a)


@pytest.mark.parametrize(
    ("to", "quantities", "errors"),
    [
        (
            "SH001",
            ["10"],
            ({"__all__": ["Constraint “transfer_between_two_stores” is violated."]}, [], [{}]),
        ),
        ("SH002", [], ({}, ["Please submit at least 1 form."], [])),
        (
            "SH002",
            ["0"],
            ({}, [], [{"quantity_sent": ["Ensure this value is greater than or equal to 1."]}]),
        ),
        (
            "SH002",
            ["1", "2"],
            (
                {},
                ["Please correct the duplicate data for sku."],
                [{}, {"__all__": ["Please correct the duplicate values below."]}],
            ),
        ),
    ],
)
def test_a_transfer_the_form_refuses_is_not_created(
    manager_a, store_a, store_b, water, to, quantities, errors
):
    client = browser(manager_a)

    response = client.post(
        url("transfer_add"),
        {
            "from_store": store_a.pk,
            "to_store": Store.objects.get(code=to).pk,
            **line_forms([{"sku": water.pk, "quantity_sent": sent} for sent in quantities]),
        },
    )

    assert response.status_code == 200
    [lines] = response.context["inline_admin_formsets"]
    shown = (
        response.context["adminform"].form.errors,
        list(lines.formset.non_form_errors()),
        lines.formset.errors,
    )
    assert shown == errors
    assert (Transfer.objects.count(), TransferLine.objects.count()) == (0, 0)


def test_save_and_continue_opens_the_new_transfer(manager_a, store_a, store_b, water):
    client = browser(manager_a)

    response = client.post(
        url("transfer_add"),
        {
            "from_store": store_a.pk,
            "to_store": store_b.pk,
            "_continue": "Save and continue editing",
            **line_forms([{"sku": water.pk, "quantity_sent": "3"}]),
        },
    )

    transfer = Transfer.objects.get()
    assert (response.status_code, response.url) == (302, url("transfer_change", transfer.pk))
    assert transfer_lines(transfer) == [("WATER-550", 3, None)]


def test_a_manager_cannot_send_from_another_store(manager_a, store_a, store_b, water):
    client = browser(manager_a)

    response = client.post(
        url("transfer_add"),
        {
            "from_store": store_b.pk,
            "to_store": store_a.pk,
            **line_forms([{"sku": water.pk, "quantity_sent": "3"}]),
        },
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["from_store"] == [
        "Select a valid choice. That choice is not one of the available choices."
    ]
    assert Transfer.objects.count() == 0


def test_manager_revises_her_draft(manager_a, store_a, store_b, store_c, water, tea):
    transfer = draft(store_a, store_b, [StockLine(water, 10), StockLine(tea, 4)])
    water_line = transfer.lines.get(sku=water)
    tea_line = transfer.lines.get(sku=tea)
    client = browser(manager_a)

    page = client.get(url("transfer_change", transfer.pk))
    response = client.post(
        url("transfer_change", transfer.pk),
        {
            "from_store": store_a.pk,
            "to_store": store_c.pk,
            "note": "改送徐家汇",
            **line_forms(
                [
                    {
                        "id": water_line.pk,
                        "transfer": transfer.pk,
                        "sku": water.pk,
                        "quantity_sent": "12",
                    },
                    {
                        "id": tea_line.pk,
                        "transfer": transfer.pk,
                        "sku": tea.pk,
                        "quantity_sent": "4",
                        "DELETE": "on",
                    },
                ],
                initial=2,
            ),
        },
    )

    assert page.status_code == 200
    assert (response.status_code, response.url) == (302, url("transfer_changelist"))
    transfer.refresh_from_db()
    assert (transfer.to_store, transfer.note, transfer.status) == (store_c, "改送徐家汇", "draft")
    assert transfer_lines(transfer) == [("WATER-550", 12, None)]
    assert ledger_size() == 0


def test_send_moves_the_goods_out_of_the_sending_store(manager_a, store_a, store_b, water, tea):
    stocked(store_a, water, 24)
    stocked(store_a, tea, 6)
    transfer = draft(store_a, store_b, [StockLine(water, 10), StockLine(tea, 6)])
    client = browser(manager_a)

    response = run_action(client, "transfer", "send_transfers", [transfer])

    assert (response.status_code, response.url) == (302, url("transfer_changelist"))
    assert flashed(response) == ["1 transfer sent."]
    transfer.refresh_from_db()
    assert transfer.status == "in_transit"
    assert transfer.sent_at is not None
    assert (numbers(store_a, water), numbers(store_a, tea)) == ((14, 0), (0, 0))
    assert numbers(store_b, water) is None
    reference = f"TR{transfer.pk:06d}"
    assert sorted(
        StockMovement.objects.filter(reason="transfer_out").values_list(
            "stock_item__sku__code", "quantity", "on_hand_after", "actor", "reference"
        )
    ) == [
        ("TEA-500", -6, 0, manager_a.pk, reference),
        ("WATER-550", -10, 14, manager_a.pk, reference),
    ]


def test_sending_without_enough_stock_is_a_message_and_moves_nothing(
    manager_a, store_a, store_b, water, tea
):
    stocked(store_a, water, 24)
    stocked(store_a, tea, 2)
    transfer = draft(store_a, store_b, [StockLine(water, 10), StockLine(tea, 3)])
    client = browser(manager_a)

    response = run_action(client, "transfer", "send_transfers", [transfer])

    assert flashed(response) == [f"{transfer}: Not enough stock for this item. (SKU: TEA-500)"]
    transfer.refresh_from_db()
    assert (transfer.status, transfer.sent_at) == ("draft", None)
    assert (numbers(store_a, water), numbers(store_a, tea)) == ((24, 0), (2, 0))
    assert ledger_size() == 2


def test_one_refused_transfer_does_not_hold_back_the_others(manager_a, store_a, store_b, water):
    stocked(store_a, water, 24)
    short = draft(store_a, store_b, [StockLine(water, 30)])
    fine = draft(store_a, store_b, [StockLine(water, 20)])
    client = browser(manager_a)

    response = run_action(client, "transfer", "send_transfers", [short, fine])

    assert flashed(response) == [
        f"{short}: Not enough stock for this item. (SKU: WATER-550)",
        "1 transfer sent.",
    ]
    short.refresh_from_db()
    fine.refresh_from_db()
    assert (short.status, fine.status) == ("draft", "in_transit")
    assert numbers(store_a, water) == (4, 0)


def test_sending_a_transfer_again_moves_nothing_more(manager_a, store_a, store_b, water):
    stocked(store_a, water, 24)
    transfer = in_transit(store_a, store_b, [StockLine(water, 10)])
    sent_at = transfer.sent_at
    client = browser(manager_a)

    response = run_action(client, "transfer", "send_transfers", [transfer])

    # The service treats a repeated send as done; the admin counts it so.
    assert flashed(response) == ["1 transfer sent."]
    transfer.refresh_from_db()
    assert (transfer.status, transfer.sent_at) == ("in_transit", sent_at)
    assert (numbers(store_a, water), ledger_size()) == ((14, 0), 2)


def test_only_the_sending_store_sends(manager_b, store_a, store_b, water):
    stocked(store_a, water, 24)
    transfer = draft(store_a, store_b, [StockLine(water, 10)])
    client = browser(manager_b)

    response = run_action(client, "transfer", "send_transfers", [transfer])

    assert flashed(response) == [f"{transfer}: Only the sending store can send a transfer."]
    transfer.refresh_from_db()
    assert transfer.status == "draft"
    assert (numbers(store_a, water), ledger_size()) == ((24, 0), 1)


def test_receive_in_full_puts_everything_sent_into_the_receiving_store(
    manager_b, store_a, store_b, water, tea
):
    stocked(store_a, water, 24)
    stocked(store_a, tea, 6)
    stocked(store_b, water, 5)
    transfer = in_transit(store_a, store_b, [StockLine(water, 10), StockLine(tea, 6)])
    client = browser(manager_b)

    response = run_action(client, "transfer", "receive_transfers_in_full", [transfer])

    assert flashed(response) == ["1 transfer received."]
    transfer.refresh_from_db()
    assert transfer.status == "received"
    assert transfer.received_at is not None
    assert transfer_lines(transfer) == [("TEA-500", 6, 6), ("WATER-550", 10, 10)]
    assert (numbers(store_b, water), numbers(store_b, tea)) == ((15, 0), (6, 0))
    assert sorted(
        StockMovement.objects.filter(reason="transfer_in").values_list(
            "stock_item__sku__code", "quantity", "on_hand_after", "actor"
        )
    ) == [("TEA-500", 6, 6, manager_b.pk), ("WATER-550", 10, 15, manager_b.pk)]


def test_receiving_is_refused_to_the_sender_and_for_a_draft(
    manager_a, manager_b, store_a, store_b, water
):
    stocked(store_a, water, 24)
    travelling = in_transit(store_a, store_b, [StockLine(water, 10)])
    unsent = draft(store_a, store_b, [StockLine(water, 4)])
    before = ledger_size()

    by_sender = run_action(
        browser(manager_a), "transfer", "receive_transfers_in_full", [travelling]
    )
    of_draft = run_action(browser(manager_b), "transfer", "receive_transfers_in_full", [unsent])

    assert flashed(by_sender) == [f"{travelling}: Only the receiving store can receive a transfer."]
    assert flashed(of_draft) == [f"{unsent}: This transfer has not been sent yet."]
    travelling.refresh_from_db()
    unsent.refresh_from_db()
    assert (travelling.status, unsent.status) == ("in_transit", "draft")
    assert transfer_lines(travelling) == [("WATER-550", 10, None)]
    assert (numbers(store_b, water), ledger_size()) == (None, before)


def test_partial_receipt_records_what_did_not_arrive(manager_b, store_a, store_b, water, tea):
    stocked(store_a, water, 24)
    stocked(store_a, tea, 6)
    transfer = in_transit(store_a, store_b, [StockLine(water, 10), StockLine(tea, 6)])
    receive_url = url("transfer_receive", transfer.pk)
    client = browser(manager_b)

    page = client.get(receive_url)
    response = client.post(receive_url, {f"received_{tea.pk}": "0", f"received_{water.pk}": "8"})
    record = client.get(url("transfer_change", transfer.pk))

    assert page.status_code == 200
    form = page.context["form"]
    assert [(line.sku.code, field.initial) for line, field in form.rows()] == [
        ("TEA-500", 6),
        ("WATER-550", 10),
    ]
    change_url = url("transfer_change", transfer.pk)
    assert (response.status_code, response.url) == (302, change_url)
    assert flashed(response) == [f"{transfer} received; 8 units did not arrive."]
    transfer.refresh_from_db()
    assert transfer.status == "received"
    assert transfer_lines(transfer) == [("TEA-500", 6, 0), ("WATER-550", 10, 8)]
    assert [line.discrepancy for line in transfer.lines.order_by("sku__code")] == [6, 2]
    # Nothing of the tea arrived: the receiving store has no row for it yet.
    assert (numbers(store_b, water), numbers(store_b, tea)) == ((8, 0), None)
    assert list(
        StockMovement.objects.filter(reason="transfer_in").values_list(
            "stock_item__sku__code", "quantity"
        )
    ) == [("WATER-550", 8)]
    assert record.status_code == 200
    # The record shows each line's sent, received and missing units (lines in no set order).
    shown = zip(
        cells(record, "quantity_sent"),
        cells(record, "quantity_received"),
        cells(record, "discrepancy"),
        strict=True,
    )
    assert sorted(shown) == [("10", "8", "2"), ("6", "0", "6")]


def test_a_receipt_above_what_was_sent_is_a_form_error(manager_b, store_a, store_b, water):
    stocked(store_a, water, 24)
    transfer = in_transit(store_a, store_b, [StockLine(water, 10)])
    before = ledger_size()
    client = browser(manager_b)

    response = client.post(url("transfer_receive", transfer.pk), {f"received_{water.pk}": "11"})

    assert response.status_code == 200
    assert response.context["form"].errors == {
        f"received_{water.pk}": ["Ensure this value is less than or equal to 10."]
    }
    transfer.refresh_from_db()
    assert transfer.status == "in_transit"
    assert transfer_lines(transfer) == [("WATER-550", 10, None)]
    assert (numbers(store_b, water), ledger_size()) == (None, before)


def test_the_receipt_page_is_the_receivers_and_only_while_in_transit(
    manager_a, manager_b, store_a, store_b, store_c, water
):
    stocked(store_a, water, 24)
    travelling = in_transit(store_a, store_b, [StockLine(water, 10)])
    unsent = draft(store_a, store_b, [StockLine(water, 4)])
    manager_c = StaffRoleFactory(role="store_manager", store=store_c).user

    by_sender = browser(manager_a).post(
        url("transfer_receive", travelling.pk), {f"received_{water.pk}": "10"}
    )
    by_stranger = browser(manager_c).get(url("transfer_receive", travelling.pk))
    of_draft = browser(manager_b).get(url("transfer_receive", unsent.pk))

    assert by_sender.status_code == 403
    assert (by_stranger.status_code, by_stranger.url) == (302, reverse("admin:index"))
    assert (of_draft.status_code, of_draft.url) == (302, url("transfer_change", unsent.pk))
    assert flashed(of_draft) == ["Only a transfer in transit can be received."]
    travelling.refresh_from_db()
    assert travelling.status == "in_transit"
    assert numbers(store_b, water) is None


def test_the_receiver_sees_the_receipt_button_and_the_sender_a_record(
    manager_a, manager_b, store_a, store_b, water
):
    stocked(store_a, water, 24)
    transfer = in_transit(store_a, store_b, [StockLine(water, 10)])
    button = f'<a class="button" href="{url("transfer_receive", transfer.pk)}">'

    receiver = browser(manager_b).get(url("transfer_change", transfer.pk))
    sending_store = browser(manager_a)
    sender = sending_store.get(url("transfer_change", transfer.pk))
    edit = sending_store.post(
        url("transfer_change", transfer.pk),
        {"from_store": store_a.pk, "to_store": store_b.pk, **line_forms([])},
    )

    assert (receiver.status_code, sender.status_code) == (200, 200)
    assert button in receiver.content.decode()
    assert button not in sender.content.decode()
    assert sender.context["has_change_permission"] is False
    assert edit.status_code == 403
    assert transfer_lines(transfer) == [("WATER-550", 10, None)]


def test_transfers_are_seen_from_both_ends_only(manager_a, store_a, store_b, store_c, water):
    outgoing = draft(store_a, store_b, [StockLine(water, 1)])
    incoming = draft(store_b, store_a, [StockLine(water, 2)])
    elsewhere = draft(store_b, store_c, [StockLine(water, 3)])
    client = browser(manager_a)

    response = client.get(url("transfer_changelist"))
    opened = client.get(url("transfer_change", elsewhere.pk))

    assert sorted(t.pk for t in listed(response)) == [outgoing.pk, incoming.pk]
    assert (opened.status_code, opened.url) == (302, reverse("admin:index"))


def test_clerk_sees_transfers_but_cannot_act_on_them(clerk_a, store_a, store_b, water):
    stocked(store_a, water, 24)
    transfer = draft(store_a, store_b, [StockLine(water, 10)])
    client = browser(clerk_a)

    listing = client.get(url("transfer_changelist"))
    page = client.get(url("transfer_change", transfer.pk))
    added = client.get(url("transfer_add"))
    send = run_action(client, "transfer", "send_transfers", [transfer])

    assert (listing.status_code, page.status_code, added.status_code) == (200, 200, 403)
    assert listing.context["action_form"] is None
    assert page.context["has_change_permission"] is False
    assert send.status_code == 200
    transfer.refresh_from_db()
    assert transfer.status == "draft"
    assert (numbers(store_a, water), ledger_size()) == ((24, 0), 1)


def test_hq_deletes_a_draft_but_not_a_sent_transfer(hq_user, store_a, store_b, water):
    stocked(store_a, water, 24)
    unsent = draft(store_a, store_b, [StockLine(water, 4)])
    travelling = in_transit(store_a, store_b, [StockLine(water, 10)])
    client = browser(hq_user)

    confirm = client.get(url("transfer_delete", unsent.pk))
    deleted = client.post(url("transfer_delete", unsent.pk), {"post": "yes"})
    refused = client.post(url("transfer_delete", travelling.pk), {"post": "yes"})

    assert (confirm.status_code, deleted.status_code, refused.status_code) == (200, 302, 403)
    assert list(Transfer.objects.values_list("pk", "status")) == [(travelling.pk, "in_transit")]
    assert TransferLine.objects.filter(transfer_id=unsent.pk).count() == 0


# --- Stock counts ------------------------------------------------------------------------------


def open_count(store, counted: dict) -> StockCount:
    count = stock_count_create(store=store, actor=None)
    for sku, quantity in counted.items():
        stock_count_set_line(count=count, sku=sku, counted=quantity)
    return count


def test_count_add_form_offers_the_users_stores_only(manager_a, store_a, store_b):
    client = browser(manager_a)

    response = client.get(url("stockcount_add"))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert list(form.fields) == ["store", "note"]
    assert list(form.fields["store"].queryset) == [store_a]
    [lines] = response.context["inline_admin_formsets"]
    assert list(lines.formset.form.base_fields) == ["sku", "counted"]
    assert len(lines.formset.forms) == 1


def test_manager_creates_a_count_with_lines(manager_a, store_a, water, tea):
    stocked(store_a, water, 24)
    client = browser(manager_a)

    response = client.post(
        url("stockcount_add"),
        {
            "store": store_a.pk,
            "note": "月末盘点",
            **line_forms(
                [
                    {"sku": water.pk, "counted": "21"},
                    {"sku": tea.pk, "counted": "0"},
                    {"sku": "", "counted": ""},
                ]
            ),
        },
    )

    assert (response.status_code, response.url) == (302, url("stockcount_changelist"))
    count = StockCount.objects.get()
    assert (count.store, count.note, count.status) == (store_a, "月末盘点", "open")
    assert (count.created_by, count.applied_at) == (manager_a, None)
    assert count_lines(count) == [("TEA-500", 0, 0), ("WATER-550", 21, 24)]
    # Counting changes nothing until the count is applied.
    assert (numbers(store_a, water), ledger_size()) == ((24, 0), 1)
    entry = LogEntry.objects.get(object_id=str(count.pk))
    assert (entry.action_flag, entry.user) == (ADDITION, manager_a)


@pytest.mark.parametrize(
    ("store", "counted", "errors"),
    [
        (
            "SH002",
            "5",
            (
                {
                    "store": [
                        "Select a valid choice. That choice is not one of the available choices."
                    ]
                },
                [{}],
            ),
        ),
        (
            "SH001",
            "-1",
            ({}, [{"counted": ["Ensure this value is greater than or equal to 0."]}]),
        ),
    ],
)
def test_a_count_the_form_refuses_is_not_created(
    manager_a, store_a, store_b, water, store, counted, errors
):
    client = browser(manager_a)

    response = client.post(
        url("stockcount_add"),
        {
            "store": Store.objects.get(code=store).pk,
            **line_forms([{"sku": water.pk, "counted": counted}]),
        },
    )

    assert response.status_code == 200
    [lines] = response.context["inline_admin_formsets"]
    assert (response.context["adminform"].form.errors, lines.formset.errors) == errors
    assert (StockCount.objects.count(), StockCountLine.objects.count()) == (0, 0)


def test_manager_corrects_an_open_count(manager_a, store_a, store_b, water, tea):
    stocked(store_a, water, 24)
    stocked(store_a, tea, 6)
    other = SKUFactory(code="COLA-330")
    count = open_count(store_a, {water: 20, tea: 3})
    stock_write_off(store=store_a, lines=[StockLine(water, 1)], idempotency_key="broken-1")
    water_line = count.lines.get(sku=water)
    tea_line = count.lines.get(sku=tea)
    client = browser(manager_a)

    page = client.get(url("stockcount_change", count.pk))
    response = client.post(
        url("stockcount_change", count.pk),
        {
            # Ignored: once a sheet exists, its store is what was counted.
            "store": store_b.pk,
            **line_forms(
                [
                    {"id": water_line.pk, "count": count.pk, "sku": water.pk, "counted": "22"},
                    {
                        "id": tea_line.pk,
                        "count": count.pk,
                        "sku": tea.pk,
                        "counted": "3",
                        "DELETE": "on",
                    },
                    {"sku": other.pk, "counted": "9"},
                ],
                initial=2,
            ),
        },
    )

    assert page.status_code == 200
    assert list(page.context["adminform"].form.fields) == []
    assert (response.status_code, response.url) == (302, url("stockcount_changelist"))
    count.refresh_from_db()
    assert (count.store, count.status) == (store_a, "open")
    # A recounted row takes a fresh reading of the books (24 less the one written off).
    assert count_lines(count) == [("COLA-330", 9, 0), ("WATER-550", 22, 23)]
    assert (numbers(store_a, water), numbers(store_a, tea), ledger_size()) == ((23, 0), (6, 0), 3)


def test_an_untouched_row_keeps_the_reading_it_was_counted_with(manager_a, store_a, water, tea):
    stocked(store_a, water, 24)
    stocked(store_a, tea, 6)
    count = open_count(store_a, {water: 20, tea: 3})
    water_line = count.lines.get(sku=water)
    tea_line = count.lines.get(sku=tea)
    stock_write_off(
        store=store_a, lines=[StockLine(water, 1), StockLine(tea, 2)], idempotency_key="broken-1"
    )
    client = browser(manager_a)

    response = client.post(
        url("stockcount_change", count.pk),
        line_forms(
            [
                {"id": water_line.pk, "count": count.pk, "sku": water.pk, "counted": "19"},
                {"id": tea_line.pk, "count": count.pk, "sku": tea.pk, "counted": "3"},
            ],
            initial=2,
        ),
    )

    assert response.status_code == 302
    # Re-reading the books for the tea row would drop the two units written off since.
    assert count_lines(count) == [("TEA-500", 3, 6), ("WATER-550", 19, 23)]


def test_two_rows_swapping_their_skus_keep_both_lines(manager_a, store_a, water, tea):
    stocked(store_a, water, 24)
    stocked(store_a, tea, 6)
    count = open_count(store_a, {water: 20, tea: 3})
    water_line = count.lines.get(sku=water)
    tea_line = count.lines.get(sku=tea)
    client = browser(manager_a)

    response = client.post(
        url("stockcount_change", count.pk),
        line_forms(
            [
                {"id": water_line.pk, "count": count.pk, "sku": tea.pk, "counted": "20"},
                {"id": tea_line.pk, "count": count.pk, "sku": water.pk, "counted": "3"},
            ],
            initial=2,
        ),
    )

    assert response.status_code == 302
    assert count_lines(count) == [("TEA-500", 20, 6), ("WATER-550", 3, 24)]


def test_applying_a_count_books_each_difference_as_one_adjustment(manager_a, store_a, water, tea):
    stocked(store_a, water, 24)
    stocked(store_a, tea, 6)
    cola = SKUFactory(code="COLA-330")
    count = open_count(store_a, {water: 21, tea: 6, cola: 4})
    # Two bottles break after the shelf was counted: the count must not undo that.
    stock_write_off(store=store_a, lines=[StockLine(water, 2)], idempotency_key="broken-1")
    client = browser(manager_a)

    response = run_action(client, "stockcount", "apply_counts", [count])

    assert (response.status_code, response.url) == (302, url("stockcount_changelist"))
    assert flashed(response) == ["1 count applied."]
    count.refresh_from_db()
    assert count.status == "applied"
    assert count.applied_at is not None
    assert count_lines(count) == [
        ("COLA-330", 4, 0),
        ("TEA-500", 6, 6),
        ("WATER-550", 21, 24),
    ]
    assert (numbers(store_a, water), numbers(store_a, tea), numbers(store_a, cola)) == (
        (19, 0),
        (6, 0),
        (4, 0),
    )
    reference = f"SC{count.pk:06d}"
    assert sorted(
        StockMovement.objects.filter(reason="count_adjustment").values_list(
            "stock_item__sku__code", "quantity", "on_hand_after", "actor", "reference"
        )
    ) == [
        ("COLA-330", 4, 4, manager_a.pk, reference),
        ("WATER-550", -3, 19, manager_a.pk, reference),
    ]


def test_a_count_below_the_reserved_units_is_refused_whole(manager_a, store_a, water, tea):
    stocked(store_a, water, 24)
    stocked(store_a, tea, 6)
    stock_reserve(store=store_a, lines=[ReserveLine(tea, 5, "SO1001/1")])
    count = open_count(store_a, {water: 21, tea: 4})
    client = browser(manager_a)

    response = run_action(client, "stockcount", "apply_counts", [count])

    assert flashed(response) == [
        f"{count}: This count would leave fewer units than orders have reserved; count again. "
        "(SKU: TEA-500)"
    ]
    count.refresh_from_db()
    assert (count.status, count.applied_at) == ("open", None)
    assert count_lines(count) == [("TEA-500", 4, 6), ("WATER-550", 21, 24)]
    assert (numbers(store_a, water), numbers(store_a, tea)) == ((24, 0), (6, 5))
    assert ledger_size() == 2


def test_a_count_leaving_less_than_nothing_is_refused_whole(manager_a, store_a, water, tea):
    stocked(store_a, water, 24)
    stocked(store_a, tea, 6)
    count = open_count(store_a, {water: 0, tea: 5})
    stock_write_off(store=store_a, lines=[StockLine(water, 4)], idempotency_key="broken-1")
    client = browser(manager_a)

    response = run_action(client, "stockcount", "apply_counts", [count])

    assert flashed(response) == [
        f"{count}: This count would leave less than nothing on hand; count again. (SKU: WATER-550)"
    ]
    count.refresh_from_db()
    assert (count.status, count.applied_at) == ("open", None)
    assert (numbers(store_a, water), numbers(store_a, tea), ledger_size()) == ((20, 0), (6, 0), 3)


def test_an_empty_count_is_refused(manager_a, store_a):
    count = open_count(store_a, {})
    client = browser(manager_a)

    response = run_action(client, "stockcount", "apply_counts", [count])

    assert flashed(response) == [f"{count}: A count needs at least one line."]
    count.refresh_from_db()
    assert count.status == "open"
    assert ledger_size() == 0


def test_an_applied_count_is_a_record(hq_user, store_a, water):
    stocked(store_a, water, 24)
    count = open_count(store_a, {water: 21})
    stock_count_apply(count=count, actor=None)
    client = browser(hq_user)

    page = client.get(url("stockcount_change", count.pk))
    changed = client.post(
        url("stockcount_change", count.pk),
        line_forms([{"id": count.lines.get().pk, "sku": water.pk, "counted": "30"}], initial=1),
    )
    deleted = client.post(url("stockcount_delete", count.pk), {"post": "yes"})

    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert (cells(page, "expected"), cells(page, "difference")) == (["24"], ["-3"])
    assert (changed.status_code, deleted.status_code) == (403, 403)
    assert count_lines(count) == [("WATER-550", 21, 24)]
    assert StockCount.objects.filter(pk=count.pk).exists()


def test_hq_deletes_an_open_count(hq_user, store_a, water):
    count = open_count(store_a, {water: 21})
    client = browser(hq_user)

    confirm = client.get(url("stockcount_delete", count.pk))
    deleted = client.post(url("stockcount_delete", count.pk), {"post": "yes"})

    assert (confirm.status_code, deleted.status_code) == (200, 302)
    assert (StockCount.objects.count(), StockCountLine.objects.count()) == (0, 0)


def test_bulk_delete_of_a_selection_holding_records_is_refused(hq_user, store_a, store_b, water):
    stocked(store_a, water, 24)
    unsent = draft(store_a, store_b, [StockLine(water, 4)])
    travelling = in_transit(store_a, store_b, [StockLine(water, 10)])
    applied = open_count(store_a, {water: 14})
    stock_count_apply(count=applied, actor=None)
    client = browser(hq_user)

    transfers = client.post(
        url("transfer_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [unsent.pk, travelling.pk],
            "post": "yes",
        },
    )
    counts = client.post(
        url("stockcount_changelist"),
        {"action": "delete_selected", "_selected_action": [applied.pk], "post": "yes"},
    )

    assert (transfers.status_code, counts.status_code) == (403, 403)
    assert sorted(Transfer.objects.values_list("status", flat=True)) == ["draft", "in_transit"]
    assert count_lines(applied) == [("WATER-550", 14, 14)]


def test_counts_are_scoped_to_the_users_stores(manager_a, store_a, store_b, water):
    mine = open_count(store_a, {water: 1})
    theirs = open_count(store_b, {water: 2})
    client = browser(manager_a)

    response = client.get(url("stockcount_changelist"))
    opened = client.get(url("stockcount_change", theirs.pk))
    applied = run_action(browser(manager_a), "stockcount", "apply_counts", [theirs])

    assert listed(response) == [mine]
    assert (opened.status_code, opened.url) == (302, reverse("admin:index"))
    # A row outside the user's queryset is not acted on, whatever the POST names.
    assert flashed(applied) == []
    theirs.refresh_from_db()
    assert theirs.status == "open"
    assert ledger_size() == 0


def test_clerk_sees_counts_but_cannot_count_or_apply(clerk_a, store_a, water):
    stocked(store_a, water, 24)
    count = open_count(store_a, {water: 21})
    client = browser(clerk_a)

    listing = client.get(url("stockcount_changelist"))
    page = client.get(url("stockcount_change", count.pk))
    added = client.post(url("stockcount_add"), {"store": store_a.pk, **line_forms([])})
    applied = run_action(client, "stockcount", "apply_counts", [count])

    assert (listing.status_code, page.status_code, added.status_code) == (200, 200, 403)
    assert listing.context["action_form"] is None
    assert page.context["has_change_permission"] is False
    assert applied.status_code == 200
    count.refresh_from_db()
    assert count.status == "open"
    assert StockCount.objects.count() == 1
    assert (numbers(store_a, water), ledger_size()) == ((24, 0), 1)


# --- Every page the module adds ----------------------------------------------------------------


def test_every_inventory_admin_page_renders(hq_user, store_a, store_b, water):
    stocked(store_a, water, 24)
    stock_reserve(store=store_a, lines=[ReserveLine(water, 2, "SO1001/1")])
    unsent = draft(store_a, store_b, [StockLine(water, 1)])
    travelling = in_transit(store_a, store_b, [StockLine(water, 3)])
    arrived = in_transit(store_a, store_b, [StockLine(water, 4)])
    transfer_receive(transfer=arrived, received=None, actor=None)
    counting = open_count(store_a, {water: 15})
    applied = open_count(store_a, {water: 15})
    stock_count_apply(count=applied, actor=None)
    client = browser(hq_user)
    pages = [
        reverse("admin:app_list", args=["inventory"]),
        url("stockitem_changelist"),
        url("stockitem_change", StockItem.objects.get(store=store_b).pk),
        url("stockmovement_changelist"),
        url("stockmovement_change", StockMovement.objects.first().pk),
        url("reservation_changelist"),
        url("reservation_change", Reservation.objects.get().pk),
        url("transfer_changelist"),
        url("transfer_add"),
        url("transfer_change", unsent.pk),
        url("transfer_change", travelling.pk),
        url("transfer_change", arrived.pk),
        url("transfer_receive", travelling.pk),
        url("stockcount_changelist"),
        url("stockcount_add"),
        url("stockcount_change", counting.pk),
        url("stockcount_change", applied.pk),
    ]

    statuses = {page: client.get(page).status_code for page in pages}

    assert statuses == {page: 200 for page in pages}


@pytest.fixture
def clerk_here_manager_there(store_a, store_c):
    """A clerk at store A who also manages store C."""
    user = StaffRoleFactory(role="clerk", store=store_a).user
    StaffRoleFactory(user=user, role="store_manager", store=store_c)
    return user


def test_managing_one_store_does_not_let_a_clerk_send_from_another(
    clerk_here_manager_there, store_a, store_b, water
):
    stocked(store_a, water, 10)
    transfer = draft(store_a, store_b, [StockLine(water, 3)])
    client = browser(clerk_here_manager_there)

    response = run_action(client, "transfer", "send_transfers", [transfer])

    transfer.refresh_from_db()
    assert transfer.status == Transfer.Status.DRAFT
    assert numbers(store_a, water) == (10, 0)
    assert client.get(url("transfer_change", transfer.pk)).context["has_change_permission"] is False
    assert response.status_code == 302


def test_a_clerk_here_manager_there_counts_only_where_she_manages(
    clerk_here_manager_there, store_a, store_c
):
    client = browser(clerk_here_manager_there)

    page = client.get(url("stockcount_add"))

    choices = [
        choice
        for choice, _label in page.context["adminform"].form.fields["store"].choices
        if choice
    ]
    assert [int(str(choice)) for choice in choices] == [store_c.pk]
