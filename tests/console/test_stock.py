"""The console's stock pages: the store's stock and a SKU's ledger, goods receipts, damage
write-offs, transfers and stock counts, each checked in the books afterwards; a clerk may look
but not adjust (403, nothing changed); another store's pages are a 404; query counts pinned."""

import re
from html.parser import HTMLParser

import pytest

from inventory.models import (
    StockCount,
    StockCountLine,
    StockItem,
    StockMovement,
    Transfer,
    TransferLine,
)
from inventory.operations import stock_item_update_settings, transfer_create, transfer_send
from inventory.services import (
    ReserveLine,
    StockLine,
    stock_receive,
    stock_release,
    stock_reserve,
    stock_sell_at_counter,
)
from retail.validators import gtin_check_digit
from tests import factories

pytestmark = pytest.mark.django_db

STOCK = "/console/SH001/stock/"
STOCK_B = "/console/SH002/stock/"


@pytest.fixture(autouse=True)
def _english(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


def _gtin(body: str) -> str:
    return f"{body}{gtin_check_digit(body)}"


@pytest.fixture
def rice(db):
    return factories.SKUFactory(
        code="RICE-5KG",
        product__name="东北大米",
        attributes={"规格": "5kg"},
        barcode=_gtin("690123450001"),
    )


@pytest.fixture
def oil(db):
    return factories.SKUFactory(
        code="OIL-5L",
        product__name="花生油",
        attributes={"规格": "5L"},
        barcode=_gtin("690123450002"),
    )


@pytest.fixture
def manager_b(store_b):
    return factories.StaffRoleFactory(role="store_manager", store=store_b).user


@pytest.fixture
def clerk_b(store_b):
    return factories.StaffRoleFactory(role="clerk", store=store_b).user


@pytest.fixture
def stocked(store_a, rice, oil):
    """Store A: 20 rice and 10 oil, received through the ledger."""
    stock_receive(
        store=store_a,
        lines=[StockLine(rice, 20), StockLine(oil, 10)],
        idempotency_key="seed",
        reference="SEED",
    )
    return rice, oil


def numbers(store, sku) -> tuple[int, int]:
    return StockItem.objects.values_list("on_hand", "reserved").get(store=store, sku=sku)


def ledger(store, sku) -> list[tuple[str, int, int, str]]:
    return list(
        StockMovement.objects.filter(stock_item__store=store, stock_item__sku=sku)
        .order_by("pk")
        .values_list("reason", "quantity", "on_hand_after", "reference")
    )


def books() -> dict:
    """Everything stock pages could change, to prove a refusal changed none of it."""
    return {
        "items": sorted(
            StockItem.objects.values_list("store__code", "sku__code", "on_hand", "reserved")
        ),
        "ledger": sorted(StockMovement.objects.values_list("pk", "quantity")),
        "transfers": sorted(Transfer.objects.values_list("pk", "status")),
        "transfer_lines": sorted(
            TransferLine.objects.values_list("pk", "quantity_sent", "quantity_received")
        ),
        "counts": sorted(StockCount.objects.values_list("pk", "status")),
        "count_lines": sorted(StockCountLine.objects.values_list("pk", "counted", "expected")),
    }


def act(client, url: str, data: dict | None = None):
    """POST as the browser does: follow the redirect to the page that shows the outcome (and
    so takes its messages off the queue)."""
    response = client.post(url, data or {}, follow=True)
    assert len(response.redirect_chain) == 1, response.status_code
    return response


def said(response) -> list[str]:
    """The messages the page shows."""
    return [str(message) for message in response.context["messages"]]


def landed(response) -> str:
    return response.redirect_chain[-1][0]


class _Tables(HTMLParser):
    """The body rows of each table by its class: [[cell text, ...], ...]."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs.get("class", "")
            self.tables.setdefault(self._table, [])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def table(response, css_class: str) -> list[list[str]]:
    parser = _Tables()
    parser.feed(response.content.decode())
    return parser.tables[css_class]


def figure(response, name: str) -> str:
    match = re.search(rf'data-figure="{name}">([^<]*)<', response.content.decode())
    return match.group(1).strip()


def form_key(response) -> str:
    match = re.search(
        r'<input type="hidden" name="key" value="([0-9a-f-]{36})"', response.content.decode()
    )
    return match.group(1)


# --- The store's stock -------------------------------------------------------------------------


def test_the_stock_list_shows_each_figure_and_flags_low_stock(client, clerk_a, store_a, stocked):
    rice, oil = stocked
    stock_reserve(store=store_a, lines=[ReserveLine(rice, 3, "O1/1")])
    # 10 oil with a safety stock of 12 kept back: low, order 12 - 10 = 2 (packs of 1).
    stock_item_update_settings(
        item=StockItem.objects.get(store=store_a, sku=oil),
        safety_stock=12,
        lead_time_days=2,
        review_days=7,
        pack_size=1,
    )
    # Store B's stock is not A's.
    factories.StockItemFactory(store=factories.StoreFactory(code="SH009"), sku=rice, on_hand=99)
    client.force_login(clerk_a)

    response = client.get(STOCK)

    assert response.status_code == 200
    assert table(response, "stock") == [
        ["OIL-5L", "花生油 5L", oil.barcode, "10", "0", "10", "12", "low order 2"],
        ["RICE-5KG", "东北大米 5kg", rice.barcode, "20", "3", "17", "0", ""],
    ]
    assert (figure(response, "found"), figure(response, "low")) == ("2", "1")
    # A clerk looks: no receipt tab.
    assert b"Goods receipt" not in response.content

    low_only = client.get(STOCK, {"low": "on"})
    assert [row[0] for row in table(low_only, "stock")] == ["OIL-5L"]


def test_search_by_name_barcode_prefix_or_code_and_a_scan_opens_the_sku(client, clerk_a, stocked):
    rice, oil = stocked
    client.force_login(clerk_a)

    by_name = client.get(STOCK, {"q": "大米"})
    by_prefix = client.get(STOCK, {"q": oil.barcode[:-3]})
    by_code_part = client.get(STOCK, {"q": "-5"})
    nothing = client.get(STOCK, {"q": "面粉"})
    scanned = client.get(STOCK, {"q": rice.barcode})
    typed = client.get(STOCK, {"q": "oil-5l"})

    assert [row[0] for row in table(by_name, "stock")] == ["RICE-5KG"]
    # The two barcodes share their first ten digits.
    assert [row[0] for row in table(by_prefix, "stock")] == ["OIL-5L", "RICE-5KG"]
    assert [row[0] for row in table(by_code_part, "stock")] == ["OIL-5L", "RICE-5KG"]
    assert b"No stock matches." in nothing.content
    assert (scanned.status_code, scanned["Location"]) == (302, f"{STOCK}sku/RICE-5KG/")
    assert (typed.status_code, typed["Location"]) == (302, f"{STOCK}sku/OIL-5L/")


@pytest.mark.parametrize("skus", [5, 50])
def test_the_stock_list_costs_the_same_queries_for_5_and_50_skus(
    client, clerk_a, store_a, skus, django_assert_num_queries
):
    for n in range(skus):
        factories.StockItemFactory(store=store_a, on_hand=n, safety_stock=4 if n % 2 else 0)
    client.force_login(clerk_a)

    # Session, user, store, roles, the switcher's stores, the count, the page, low stock.
    with django_assert_num_queries(8):
        response = client.get(STOCK)

    assert len(table(response, "stock")) == skus
    # Odd n (1 and 3) at or below their safety stock of 4 are low; 5 and above are not.
    assert figure(response, "low") == "2"


def test_the_stock_list_pages_by_50(client, clerk_a, store_a):
    for n in range(51):
        factories.StockItemFactory(store=store_a, sku__code=f"SKU-{n:03d}")
    client.force_login(clerk_a)

    first = client.get(STOCK)
    second = client.get(STOCK, {"page": 2})

    assert [row[0] for row in table(first, "stock")] == [f"SKU-{n:03d}" for n in range(50)]
    assert [row[0] for row in table(second, "stock")] == ["SKU-050"]
    assert b"Page 2 of 2" in second.content


def test_the_sku_page_shows_the_ledger_newest_first_and_the_active_reservations(
    client, manager_a, store_a, stocked, django_assert_num_queries
):
    rice, _oil = stocked
    stock_sell_at_counter(
        store=store_a, lines=[StockLine(rice, 2)], idempotency_key="sale-1", actor=manager_a
    )
    stock_reserve(store=store_a, lines=[ReserveLine(rice, 3, "O1/1")])
    stock_reserve(store=store_a, lines=[ReserveLine(rice, 1, "O2/1")])
    stock_release(line_key="O2/1")
    client.force_login(manager_a)

    # Session, user, store, roles, the stock row, the ledger's count, the reservations, the
    # switcher's stores, the ledger's page.
    with django_assert_num_queries(9):
        response = client.get(f"{STOCK}sku/RICE-5KG/")

    assert response.status_code == 200
    assert [figure(response, name) for name in ("on_hand", "reserved", "available")] == [
        "18",
        "3",
        "15",
    ]
    assert [row[1:] for row in table(response, "ledger")] == [
        ["counter sale", "-2", "18", manager_a.username, "—"],
        ["goods receipt", "+20", "20", "—", "SEED"],
    ]
    assert [row[:3] for row in table(response, "reservations")] == [
        ["O1/1", "3", "held until payment"]
    ]
    # A manager may write off.
    assert b"Write off damaged goods" in response.content


def test_the_ledger_pages_by_50(client, clerk_a, store_a, rice):
    for n in range(1, 56):
        stock_receive(store=store_a, lines=[StockLine(rice, n)], idempotency_key=f"r{n}")
    client.force_login(clerk_a)

    first = client.get(f"{STOCK}sku/RICE-5KG/")
    second = client.get(f"{STOCK}sku/RICE-5KG/", {"page": 2})

    assert [row[2] for row in table(first, "ledger")] == [f"+{n}" for n in range(55, 5, -1)]
    assert [row[2] for row in table(second, "ledger")] == ["+5", "+4", "+3", "+2", "+1"]
    assert b"Write off damaged goods" not in first.content


# --- Receipts ----------------------------------------------------------------------------------


def test_a_receipt_books_each_line_once_even_when_the_form_is_sent_twice(
    client, manager_a, store_a, stocked
):
    rice, oil = stocked
    client.force_login(manager_a)
    page = client.get(f"{STOCK}receipts/")
    key = form_key(page)
    data = {
        "key": key,
        # Scanned rice twice, typed 12 more, and 3 oil by code.
        "lines": f"{rice.barcode}\n{rice.barcode}\noil-5l 3\n{rice.barcode} 12\n",
        "reference": "DN-2025-001",
    }

    first = act(client, f"{STOCK}receipts/", data)
    second = act(client, f"{STOCK}receipts/", data)

    assert landed(first) == f"{STOCK}receipts/"
    assert said(first) == ["Receipt booked: RICE-5KG ×14, OIL-5L ×3."]
    assert said(second) == ["This receipt was booked already; nothing was booked again."]
    assert numbers(store_a, rice) == (34, 0)
    assert numbers(store_a, oil) == (13, 0)
    assert ledger(store_a, rice) == [
        ("receipt", 20, 20, "SEED"),
        ("receipt", 14, 34, "DN-2025-001"),
    ]
    assert ledger(store_a, oil) == [("receipt", 10, 10, "SEED"), ("receipt", 3, 13, "DN-2025-001")]
    assert (
        StockMovement.objects.get(reference="DN-2025-001", stock_item__sku=rice).actor == manager_a
    )
    # The next receipt gets a key of its own.
    assert form_key(client.get(f"{STOCK}receipts/")) != key


def test_a_receipt_sent_again_after_editing_books_only_what_it_had_not(
    client, manager_a, store_a, stocked
):
    """Back, edit, send: the lines the key booked before stay booked once, and the page says
    which."""
    rice, oil = stocked
    client.force_login(manager_a)
    key = form_key(client.get(f"{STOCK}receipts/"))
    act(client, f"{STOCK}receipts/", {"key": key, "lines": "RICE-5KG 5"})

    edited = act(client, f"{STOCK}receipts/", {"key": key, "lines": "RICE-5KG 7\nOIL-5L 2"})

    assert said(edited) == [
        "Part of this receipt was booked already and was not booked again: RICE-5KG."
    ]
    assert numbers(store_a, rice) == (25, 0)
    assert numbers(store_a, oil) == (12, 0)
    assert ledger(store_a, rice)[1:] == [("receipt", 5, 25, "")]
    assert ledger(store_a, oil)[1:] == [("receipt", 2, 12, "")]


def test_a_receipt_for_a_sku_the_store_never_kept_opens_its_row(client, manager_a, store_a, rice):
    client.force_login(manager_a)
    key = form_key(client.get(f"{STOCK}receipts/"))

    response = act(client, f"{STOCK}receipts/", {"key": key, "lines": "RICE-5KG 6"})

    assert said(response) == ["Receipt booked: RICE-5KG ×6."]
    assert numbers(store_a, rice) == (6, 0)
    assert ledger(store_a, rice) == [("receipt", 6, 6, "")]


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ("RICE-5KG 4\nNOPE 2\n6900000000000", "Unknown barcode or SKU code: NOPE, 6900000000000."),
        ("RICE-5KG 0", "Line 1: the quantity must be a whole number from 1 to 99999."),
        ("RICE-5KG\nOIL-5L 2 3", "Line 2: write a barcode or SKU code, then a quantity."),
        ("RICE-5KG 99999\nRICE-5KG", "At most 99999 units per SKU: RICE-5KG."),
        ("  \n", "This field is required."),
    ],
)
def test_a_receipt_with_a_bad_line_books_nothing(client, manager_a, stocked, lines, error):
    client.force_login(manager_a)
    key = form_key(client.get(f"{STOCK}receipts/"))
    before = books()

    response = client.post(f"{STOCK}receipts/", {"key": key, "lines": lines})

    assert response.status_code == 200
    assert response.context["form"].errors == {"lines": [error]}
    assert books() == before
    # Shown again with the same key: the corrected form still books once.
    assert form_key(response) == key


def test_a_receipt_without_its_key_books_nothing(client, manager_a, stocked):
    client.force_login(manager_a)
    before = books()

    response = client.post(f"{STOCK}receipts/", {"lines": "RICE-5KG 4"})

    assert response.status_code == 200
    assert response.context["form"].errors == {"key": ["This field is required."]}
    assert books() == before


# --- Damage ------------------------------------------------------------------------------------


def test_damage_is_written_off_with_its_reason_but_never_reserved_units(
    client, manager_a, store_a, stocked
):
    rice, _oil = stocked
    stock_reserve(store=store_a, lines=[ReserveLine(rice, 15, "O1/1")])
    client.force_login(manager_a)
    url = f"{STOCK}sku/RICE-5KG/damage/"
    key = form_key(client.get(f"{STOCK}sku/RICE-5KG/"))

    done = act(client, url, {"key": key, "quantity": 4, "reason": " crushed bags "})
    again = act(client, url, {"key": key, "quantity": 4, "reason": "crushed bags"})
    after_write_off = books()
    # One unit is free now (16 on hand, 15 reserved): two are refused.
    refused = act(
        client,
        url,
        {"key": form_key(client.get(f"{STOCK}sku/RICE-5KG/")), "quantity": 2, "reason": "x"},
    )

    assert landed(done) == f"{STOCK}sku/RICE-5KG/"
    assert said(done) == ["4 units of RICE-5KG written off."]
    assert numbers(store_a, rice) == (16, 15)
    assert ledger(store_a, rice) == [
        ("receipt", 20, 20, "SEED"),
        ("damage", -4, 16, "crushed bags"),
    ]
    assert said(again) == ["This write-off was booked already; nothing was booked again."]
    assert said(refused) == ["Not enough stock for this item. (SKU: RICE-5KG)"]
    assert books() == after_write_off


def test_a_damage_form_with_errors_is_shown_again_and_books_nothing(client, manager_a, stocked):
    client.force_login(manager_a)
    key = form_key(client.get(f"{STOCK}sku/RICE-5KG/"))
    before = books()

    response = client.post(
        f"{STOCK}sku/RICE-5KG/damage/", {"key": key, "quantity": 0, "reason": "  "}
    )

    assert response.status_code == 200
    assert response.context["damage_form"].errors == {
        "quantity": ["Ensure this value is greater than or equal to 1."],
        "reason": ["This field is required."],
    }
    assert books() == before


# --- Transfers ---------------------------------------------------------------------------------


def test_a_transfer_is_drafted_sent_and_received_with_a_discrepancy_at_the_receiving_store(
    client, manager_a, manager_b, store_a, store_b, stocked
):
    rice, oil = stocked
    client.force_login(manager_a)

    drafted = act(
        client,
        f"{STOCK}transfers/new/",
        {"to_store": store_b.pk, "lines": "RICE-5KG 5\nOIL-5L 2", "note": "weekend promo"},
    )
    transfer = Transfer.objects.get()
    number = f"TR{transfer.pk:06d}"
    assert landed(drafted) == f"{STOCK}transfers/{transfer.pk}/"
    assert said(drafted) == [f"{number} saved as a draft."]
    assert (transfer.status, transfer.from_store, transfer.to_store, transfer.note) == (
        "draft",
        store_a,
        store_b,
        "weekend promo",
    )
    assert sorted(transfer.lines.values_list("sku__code", "quantity_sent")) == [
        ("OIL-5L", 2),
        ("RICE-5KG", 5),
    ]
    assert StockMovement.objects.count() == 2  # the seed only

    sent = act(client, f"{STOCK}transfers/{transfer.pk}/send/")
    assert said(sent) == [f"{number} sent."]
    transfer.refresh_from_db()
    assert transfer.status == "in_transit"
    assert numbers(store_a, rice) == (15, 0)
    assert numbers(store_a, oil) == (8, 0)
    assert ledger(store_a, rice)[-1] == ("transfer_out", -5, 15, number)
    assert ledger(store_a, oil)[-1] == ("transfer_out", -2, 8, number)

    # The sender cannot receive it at its own console.
    in_transit = books()
    assert client.post(f"{STOCK}transfers/{transfer.pk}/receive-all/").status_code == 404
    assert client.get(f"{STOCK}transfers/{transfer.pk}/receive/").status_code == 404
    assert books() == in_transit

    client.force_login(manager_b)
    page = client.get(f"{STOCK_B}transfers/{transfer.pk}/")
    assert b"Receive with discrepancies" in page.content
    received = act(
        client,
        f"{STOCK_B}transfers/{transfer.pk}/receive/",
        {f"received_{rice.pk}": 4, f"received_{oil.pk}": 2},
    )

    assert landed(received) == f"{STOCK_B}transfers/{transfer.pk}/"
    assert said(received) == [f"{number} received; 1 unit did not arrive."]
    transfer.refresh_from_db()
    assert transfer.status == "received"
    assert sorted(
        transfer.lines.values_list("sku__code", "quantity_sent", "quantity_received")
    ) == [("OIL-5L", 2, 2), ("RICE-5KG", 5, 4)]
    assert numbers(store_b, rice) == (4, 0)
    assert numbers(store_b, oil) == (2, 0)
    assert ledger(store_b, rice) == [("transfer_in", 4, 4, number)]
    assert ledger(store_b, oil) == [("transfer_in", 2, 2, number)]
    assert numbers(store_a, rice) == (15, 0)
    detail = client.get(f"{STOCK_B}transfers/{transfer.pk}/")
    assert table(detail, "transfer-lines") == [
        ["OIL-5L", "花生油 5L", "2", "2", "0"],
        ["RICE-5KG", "东北大米 5kg", "5", "4", "1"],
    ]
    assert figure(detail, "missing") == "1"


def test_a_transfer_received_in_full_and_a_second_receipt_changes_nothing(
    client, manager_a, manager_b, store_a, store_b, stocked
):
    rice, _oil = stocked
    transfer = transfer_create(
        from_store=store_a, to_store=store_b, lines=[StockLine(rice, 6)], actor=manager_a
    )
    transfer_send(transfer=transfer, actor=manager_a)
    client.force_login(manager_b)
    url = f"{STOCK_B}transfers/{transfer.pk}/receive-all/"

    first = act(client, url)
    after = books()
    second = act(client, url)
    partial_page = client.get(f"{STOCK_B}transfers/{transfer.pk}/receive/", follow=True)

    assert said(first) == [f"TR{transfer.pk:06d} received in full."]
    assert numbers(store_b, rice) == (6, 0)
    assert ledger(store_b, rice) == [("transfer_in", 6, 6, f"TR{transfer.pk:06d}")]
    assert TransferLine.objects.get().quantity_received == 6
    assert books() == after
    assert said(second) == [f"TR{transfer.pk:06d} was received already; nothing changed."]
    assert said(partial_page) == ["Only a transfer in transit can be received."]


def test_a_transfer_short_of_stock_is_not_sent_and_nothing_moves(
    client, manager_a, store_a, store_b, stocked
):
    rice, oil = stocked
    transfer = transfer_create(
        from_store=store_a,
        to_store=store_b,
        lines=[StockLine(rice, 5), StockLine(oil, 11)],
        actor=manager_a,
    )
    client.force_login(manager_a)
    before = books()

    response = act(client, f"{STOCK}transfers/{transfer.pk}/send/")

    assert said(response) == ["Not enough stock for this item. (SKU: OIL-5L)"]
    assert books() == before
    assert Transfer.objects.get().status == "draft"


def test_a_transfer_draft_form_refuses_bad_input(client, manager_a, store_a, stocked):
    client.force_login(manager_a)
    before = books()

    own_store = client.post(
        f"{STOCK}transfers/new/", {"to_store": store_a.pk, "lines": "RICE-5KG 1"}
    )

    assert own_store.status_code == 200
    assert own_store.context["form"].errors == {
        "to_store": ["Select a valid choice. That choice is not one of the available choices."]
    }
    assert books() == before


def test_the_transfer_list_shows_both_directions(
    client, clerk_a, manager_a, store_a, store_b, stocked
):
    rice, _oil = stocked
    store_c = factories.StoreFactory(code="SH003")
    outgoing = transfer_create(
        from_store=store_a, to_store=store_b, lines=[StockLine(rice, 1)], actor=manager_a
    )
    incoming = transfer_create(
        from_store=store_b, to_store=store_a, lines=[StockLine(rice, 2)], actor=None
    )
    elsewhere = transfer_create(
        from_store=store_b, to_store=store_c, lines=[StockLine(rice, 3)], actor=None
    )
    client.force_login(clerk_a)

    response = client.get(f"{STOCK}transfers/")

    assert [row[:2] + row[4:5] for row in table(response, "transfers")] == [
        [f"TR{incoming.pk:06d}", "incoming", "draft"],
        [f"TR{outgoing.pk:06d}", "outgoing", "draft"],
    ]
    assert client.get(f"{STOCK}transfers/{elsewhere.pk}/").status_code == 404
    # A clerk sees no new-transfer button and no send button.
    assert b"New transfer" not in response.content
    assert b"Send: the goods leave" not in client.get(f"{STOCK}transfers/{outgoing.pk}/").content


# --- Stock counts ------------------------------------------------------------------------------


def _count_lines(count) -> list[tuple[str, int, int]]:
    return sorted(count.lines.values_list("sku__code", "counted", "expected"))


def test_a_count_books_only_the_difference_from_the_books_of_its_moment(
    client, manager_a, store_a, stocked
):
    rice, oil = stocked
    client.force_login(manager_a)

    started = act(
        client,
        f"{STOCK}counts/start/",
        {"scope": "chosen", "skus": f"{rice.barcode} oil-5l", "note": "aisle 3"},
    )
    count = StockCount.objects.get()
    number = f"SC{count.pk:06d}"
    assert landed(started) == f"{STOCK}counts/{count.pk}/"
    assert said(started) == [f"{number} started with 2 SKUs."]
    # Every line starts at the books' figure.
    assert _count_lines(count) == [("OIL-5L", 10, 10), ("RICE-5KG", 20, 20)]

    # 18 rice on the shelf; oil not counted now.
    entered = act(
        client,
        f"{STOCK}counts/{count.pk}/enter/",
        {f"counted_{rice.pk}": 18, f"counted_{oil.pk}": ""},
    )
    assert said(entered) == ["1 count written down."]
    assert _count_lines(count) == [("OIL-5L", 10, 10), ("RICE-5KG", 18, 20)]
    # A sale after the count is in the ledger already and stays booked.
    stock_sell_at_counter(store=store_a, lines=[StockLine(rice, 3)], idempotency_key="after")

    applied = act(client, f"{STOCK}counts/{count.pk}/apply/")

    assert said(applied) == [f"{number} applied: 1 SKU adjusted."]
    assert numbers(store_a, rice) == (15, 0)
    assert numbers(store_a, oil) == (10, 0)
    assert ledger(store_a, rice)[-1] == ("count_adjustment", -2, 15, number)
    assert ledger(store_a, oil) == [("receipt", 10, 10, "SEED")]
    count.refresh_from_db()
    assert count.status == "applied"
    sheet = client.get(f"{STOCK}counts/{count.pk}/")
    assert table(sheet, "count-lines") == [
        ["OIL-5L", "花生油 5L", "10", "10", "0"],
        ["RICE-5KG", "东北大米 5kg", "20", "18", "-2"],
    ]
    assert b"Apply count" not in sheet.content
    # Applying again, or writing on the applied sheet, changes nothing.
    applied_books = books()
    again = act(client, f"{STOCK}counts/{count.pk}/apply/")
    late = act(client, f"{STOCK}counts/{count.pk}/enter/", {"more": "RICE-5KG 1"})
    assert said(again) == [f"{number} was applied already; nothing changed."]
    assert said(late) == ["This count has already been applied."]
    assert books() == applied_books


def test_a_count_of_every_sku_and_more_skus_scanned_onto_the_sheet(
    client, manager_a, store_a, stocked
):
    rice, oil = stocked
    flour = factories.SKUFactory(code="FLOUR-1KG")
    client.force_login(manager_a)

    act(client, f"{STOCK}counts/start/", {"scope": "all", "skus": ""})
    count = StockCount.objects.get()
    assert _count_lines(count) == [("OIL-5L", 10, 10), ("RICE-5KG", 20, 20)]

    # Three flour packs scanned one by one, found on the shelf though the books hold none.
    act(
        client,
        f"{STOCK}counts/{count.pk}/enter/",
        {f"counted_{oil.pk}": 9, "more": f"{flour.barcode}\n{flour.barcode}\nflour-1kg"},
    )
    act(client, f"{STOCK}counts/{count.pk}/apply/")

    assert _count_lines(count) == [("FLOUR-1KG", 3, 0), ("OIL-5L", 9, 10), ("RICE-5KG", 20, 20)]
    assert numbers(store_a, flour) == (3, 0)
    assert numbers(store_a, oil) == (9, 0)
    assert numbers(store_a, rice) == (20, 0)
    number = f"SC{count.pk:06d}"
    assert ledger(store_a, flour) == [("count_adjustment", 3, 3, number)]
    assert ledger(store_a, oil)[-1] == ("count_adjustment", -1, 9, number)
    assert len(ledger(store_a, rice)) == 1


def test_a_count_below_the_reserved_units_is_refused_and_changes_nothing(
    client, manager_a, store_a, stocked
):
    rice, _oil = stocked
    stock_reserve(store=store_a, lines=[ReserveLine(rice, 6, "O1/1")])
    client.force_login(manager_a)
    act(client, f"{STOCK}counts/start/", {"scope": "chosen", "skus": "RICE-5KG"})
    count = StockCount.objects.get()
    act(client, f"{STOCK}counts/{count.pk}/enter/", {f"counted_{rice.pk}": 5})
    before = books()

    response = act(client, f"{STOCK}counts/{count.pk}/apply/")

    assert said(response) == [
        "This count would leave fewer units than orders have reserved; count again. (SKU: RICE-5KG)"
    ]
    assert books() == before
    assert numbers(store_a, rice) == (20, 6)
    assert StockCount.objects.get().status == "open"


def test_a_count_that_would_leave_less_than_nothing_is_refused_and_changes_nothing(
    client, manager_a, store_a, stocked
):
    rice, _oil = stocked
    client.force_login(manager_a)
    act(client, f"{STOCK}counts/start/", {"scope": "chosen", "skus": "RICE-5KG"})
    count = StockCount.objects.get()
    # Counted 2 short; then 19 sold: 1 on the books, and 1 - 2 is less than nothing.
    act(client, f"{STOCK}counts/{count.pk}/enter/", {f"counted_{rice.pk}": 18})
    stock_sell_at_counter(store=store_a, lines=[StockLine(rice, 19)], idempotency_key="s")
    before = books()

    response = act(client, f"{STOCK}counts/{count.pk}/apply/")

    assert said(response) == [
        "This count would leave less than nothing on hand; count again. (SKU: RICE-5KG)"
    ]
    assert books() == before
    assert numbers(store_a, rice) == (1, 0)


def test_a_count_form_with_errors_writes_nothing(client, manager_a, store_a, stocked):
    rice, _oil = stocked
    client.force_login(manager_a)
    empty = client.post(f"{STOCK}counts/start/", {"scope": "chosen", "skus": " "})
    assert empty.status_code == 200
    assert empty.context["form"].errors == {"skus": ["Name at least one SKU, or count every SKU."]}
    assert StockCount.objects.count() == 0

    act(client, f"{STOCK}counts/start/", {"scope": "chosen", "skus": "RICE-5KG"})
    count = StockCount.objects.get()
    before = books()
    twice = client.post(
        f"{STOCK}counts/{count.pk}/enter/", {f"counted_{rice.pk}": 3, "more": "RICE-5KG 4"}
    )
    negative = client.post(f"{STOCK}counts/{count.pk}/enter/", {f"counted_{rice.pk}": -1})

    assert twice.context["form"].errors == {
        "more": ["Counted twice, above and here: RICE-5KG. Enter each SKU once."]
    }
    assert negative.context["form"].errors == {
        f"counted_{rice.pk}": ["Ensure this value is greater than or equal to 0."]
    }
    assert books() == before


def test_an_empty_store_has_nothing_to_count(client, manager_a, store_a):
    client.force_login(manager_a)

    response = client.post(f"{STOCK}counts/start/", {"scope": "all"})

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "This store keeps no stock to count yet."
    ]
    assert StockCount.objects.count() == 0


# --- Who may do what ---------------------------------------------------------------------------


def test_a_clerk_may_look_but_every_adjustment_is_a_403_and_changes_nothing(
    client, clerk_a, manager_a, store_a, store_b, stocked
):
    rice, _oil = stocked
    draft = transfer_create(
        from_store=store_a, to_store=store_b, lines=[StockLine(rice, 2)], actor=manager_a
    )
    incoming = transfer_create(
        from_store=store_b, to_store=store_a, lines=[StockLine(rice, 1)], actor=None
    )
    stock_receive(store=store_b, lines=[StockLine(rice, 5)], idempotency_key="b")
    transfer_send(transfer=incoming, actor=None)
    client.force_login(manager_a)
    act(client, f"{STOCK}counts/start/", {"scope": "chosen", "skus": "RICE-5KG"})
    count = StockCount.objects.get()
    client.force_login(clerk_a)
    before = books()
    key = "0b3a1c9e-6f1d-4a55-8f2e-9d1c2b3a4f5e"

    looks = [
        client.get(STOCK).status_code,
        client.get(f"{STOCK}sku/RICE-5KG/").status_code,
        client.get(f"{STOCK}transfers/").status_code,
        client.get(f"{STOCK}transfers/{draft.pk}/").status_code,
        client.get(f"{STOCK}counts/").status_code,
        client.get(f"{STOCK}counts/{count.pk}/").status_code,
    ]
    adjustments = {
        "receipt page": client.get(f"{STOCK}receipts/").status_code,
        "receipt": client.post(
            f"{STOCK}receipts/", {"key": key, "lines": "RICE-5KG 5"}
        ).status_code,
        "damage": client.post(
            f"{STOCK}sku/RICE-5KG/damage/", {"key": key, "quantity": 1, "reason": "x"}
        ).status_code,
        "new transfer": client.post(
            f"{STOCK}transfers/new/", {"to_store": store_b.pk, "lines": "RICE-5KG 1"}
        ).status_code,
        "send": client.post(f"{STOCK}transfers/{draft.pk}/send/").status_code,
        "receive in full": client.post(f"{STOCK}transfers/{incoming.pk}/receive-all/").status_code,
        "receive in part": client.post(
            f"{STOCK}transfers/{incoming.pk}/receive/", {f"received_{rice.pk}": 0}
        ).status_code,
        "start count": client.post(f"{STOCK}counts/start/", {"scope": "all"}).status_code,
        "enter count": client.post(
            f"{STOCK}counts/{count.pk}/enter/", {f"counted_{rice.pk}": 0}
        ).status_code,
        "apply count": client.post(f"{STOCK}counts/{count.pk}/apply/").status_code,
    }

    assert looks == [200] * 6
    assert adjustments == dict.fromkeys(adjustments, 403)
    assert books() == before
    sku_page = client.get(f"{STOCK}sku/RICE-5KG/")
    assert b"Write off damaged goods" not in sku_page.content
    assert b"Apply count" not in client.get(f"{STOCK}counts/{count.pk}/").content
    assert b"Receive in full" not in client.get(f"{STOCK}transfers/{incoming.pk}/").content


def test_a_manager_here_who_is_a_clerk_there_cannot_receive_there(
    client, manager_a, store_a, store_b, stocked
):
    rice, _oil = stocked
    factories.StaffRoleFactory(role="clerk", store=store_b, user=manager_a)
    transfer = transfer_create(
        from_store=store_a, to_store=store_b, lines=[StockLine(rice, 2)], actor=manager_a
    )
    transfer_send(transfer=transfer, actor=manager_a)
    client.force_login(manager_a)
    before = books()

    response = client.post(f"{STOCK_B}transfers/{transfer.pk}/receive-all/")

    assert response.status_code == 403
    assert books() == before


def test_another_stores_stock_pages_are_a_404_and_change_nothing(
    client, manager_a, manager_b, store_a, store_b, stocked
):
    rice, _oil = stocked
    stock_receive(store=store_b, lines=[StockLine(rice, 5)], idempotency_key="b")
    b_transfer = transfer_create(
        from_store=store_b,
        to_store=factories.StoreFactory(code="SH003"),
        lines=[StockLine(rice, 1)],
        actor=manager_b,
    )
    client.force_login(manager_b)
    act(client, f"{STOCK_B}counts/start/", {"scope": "all"})
    b_count = StockCount.objects.get()
    client.force_login(manager_a)
    before = books()
    key = "0b3a1c9e-6f1d-4a55-8f2e-9d1c2b3a4f5e"

    statuses = [
        client.get(STOCK_B).status_code,
        client.get(f"{STOCK_B}sku/RICE-5KG/").status_code,
        client.get(f"{STOCK_B}receipts/").status_code,
        client.post(f"{STOCK_B}receipts/", {"key": key, "lines": "RICE-5KG 5"}).status_code,
        client.post(
            f"{STOCK_B}sku/RICE-5KG/damage/", {"key": key, "quantity": 1, "reason": "x"}
        ).status_code,
        client.get(f"{STOCK_B}transfers/").status_code,
        client.post(f"{STOCK_B}transfers/{b_transfer.pk}/send/").status_code,
        client.get(f"{STOCK_B}counts/{b_count.pk}/").status_code,
        client.post(f"{STOCK_B}counts/{b_count.pk}/apply/").status_code,
        # B's documents under A's own address are not found either.
        client.get(f"{STOCK}transfers/{b_transfer.pk}/").status_code,
        client.post(f"{STOCK}transfers/{b_transfer.pk}/send/").status_code,
        client.get(f"{STOCK}counts/{b_count.pk}/").status_code,
        client.post(f"{STOCK}counts/{b_count.pk}/apply/").status_code,
        client.get(f"{STOCK}sku/NOPE/").status_code,
    ]

    assert statuses == [404] * 14
    assert books() == before
