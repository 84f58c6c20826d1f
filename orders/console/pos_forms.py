"""The counter sale's input, and the steps both doors of payment share: cash
(``orders.console.pos``) and the WeChat payment code (``wechat.console.views``).

The basket lives in the browser and comes with every request as JSON (what was scanned, how
many). The member is scanned once: her code lasts a minute, so the page keeps a signed token
of its own instead (``member_token``), good for this store for half an hour. Prices always
come from ``orders.pricing.price_basket`` (channel ``counter``), and the sale from
``checkout_place`` with the browser's id as its ``client_reference``: a resend of the same
submission finds the first sale.
"""

import json
import logging
from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from inventory.selectors import availability_for_skus
from members.models import Member
from members.services.identity import member_code_resolve
from orders.models import ActorKind, Channel, Fulfilment, Order
from orders.pricing import BasketLine, Quote, price_basket
from orders.services import checkout_place, order_cancel, store_serves
from orders.transitions import Cause
from retail.errors import BusinessError
from retail.models import SKU, Store
from retail.money import fen_to_yuan, yuan_to_fen

logger = logging.getLogger("orders.console.pos")

MEMBER_TOKEN_SALT = "orders.console.pos.member"  # noqa: S105 (a salt, not a secret)
# How long a scanned member stays on the till's basket.
MEMBER_TOKEN_SECONDS = 30 * 60
# crypto.randomUUID() in the browser; anything else of that alphabet and length will do.
CLIENT_REFERENCE = r"^[A-Za-z0-9-]{8,64}$"
# WeChat's payment codes: 18 digits starting 10 to 15.
AUTH_CODE = r"^1[0-5]\d{16}$"


def refusal(code: str, message: str, /, *, status_code: int = 400, **fields: str) -> BusinessError:
    return BusinessError(
        code, message, fields={k: [str(v)] for k, v in fields.items()}, status_code=status_code
    )


# --- Input -------------------------------------------------------------------------------------


class SaleForm(forms.Form):
    """What the till sends for a price preview: the basket, the member, coupon and points."""

    basket = forms.CharField(max_length=20_000)
    member = forms.CharField(required=False, max_length=300)
    # A member code scanned just now (the preview turns it into ``member``).
    member_code = forms.CharField(required=False, max_length=200)
    coupon_code = forms.CharField(required=False, max_length=16)
    points = forms.IntegerField(required=False, min_value=0, max_value=10**9)

    empty_basket_allowed = True

    def clean_basket(self) -> list[tuple[str, int]]:
        invalid = forms.ValidationError(
            gettext_lazy("The basket could not be read: scan the items again."),
            code="invalid_basket",
        )
        try:
            entries = json.loads(self.cleaned_data["basket"])
        except ValueError:
            raise invalid from None
        if not isinstance(entries, list) or len(entries) > settings.ORDER_MAX_LINES:
            raise invalid
        if not entries and not self.empty_basket_allowed:
            raise forms.ValidationError(
                gettext_lazy("The basket is empty: scan the first item."), code="empty_basket"
            )
        lines = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise invalid
            code, quantity = entry.get("code"), entry.get("quantity")
            if not isinstance(code, str) or not 0 < len(code.strip()) <= 32:
                raise invalid
            if (
                not isinstance(quantity, int)
                or isinstance(quantity, bool)
                or not 0 < quantity <= settings.ORDER_MAX_LINE_QUANTITY
            ):
                raise forms.ValidationError(
                    gettext_lazy("Quantity must be between 1 and %(max)d."),
                    code="invalid_quantity",
                    params={"max": settings.ORDER_MAX_LINE_QUANTITY},
                )
            lines.append((code.strip(), quantity))
        return lines

    def clean_coupon_code(self) -> str:
        return self.cleaned_data["coupon_code"].strip().upper()

    def clean_points(self) -> int:
        return self.cleaned_data["points"] or 0


class PaidSaleForm(SaleForm):
    """A sale submitted for payment: also its id from the browser and the total the clerk
    saw, so that a price that changed since the preview is shown again, not charged."""

    client_reference = forms.RegexField(CLIENT_REFERENCE)
    expected_total = forms.IntegerField(required=False, min_value=0)

    empty_basket_allowed = False


class CashSaleForm(PaidSaleForm):
    tendered = forms.CharField(max_length=12)

    def clean_tendered(self) -> int:
        try:
            fen = yuan_to_fen(self.cleaned_data["tendered"])
        except ValueError:
            fen = -1
        if not 0 <= fen <= 10**9:
            raise forms.ValidationError(
                gettext_lazy("Enter the cash received in yuan, e.g. 100 or 52.50."),
                code="invalid_tendered",
            )
        return fen


class CodeSaleForm(PaidSaleForm):
    auth_code = forms.RegexField(
        AUTH_CODE,
        error_messages={
            "invalid": gettext_lazy(
                "A WeChat payment code is 18 digits starting 10 to 15: scan it again."
            )
        },
    )


def form_refusal(form: forms.Form) -> BusinessError:
    """The first thing wrong with the form, as the refusal the page shows."""
    for field, errors in form.errors.as_data().items():
        error = errors[0]
        message = " ".join(error.messages)
        if field in ("client_reference", "__all__"):
            message = _("This sale could not be submitted: reload the page and try again.")
        return refusal(error.code or "validation_error", message, **{field: message})
    return refusal("validation_error", _("Check the sale and try again."))


# --- The store ---------------------------------------------------------------------------------


def check_store_sells(store: Store) -> None:
    if not store_serves(store, Fulfilment.COUNTER):
        raise refusal(
            "store_does_not_serve",
            _("%(store)s does not offer counter sales.") % {"store": store.name},
            status_code=409,
            store=store.code,
        )


# --- The basket --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Basket:
    lines: list[BasketLine]
    skus: dict[int, SKU]
    # What was scanned for each SKU (the browser keeps its lines under these).
    scanned: dict[int, str]


def basket_resolve(entries: list[tuple[str, int]]) -> Basket:
    """Each scanned barcode or SKU code to its SKU, in one query; the same SKU scanned under
    both adds up to one line. An unknown code is refused and names what was scanned."""
    codes = {code for code, _quantity in entries}
    found = SKU.objects.select_related("product").filter(
        Q(barcode__in=codes) | Q(code__in={code.upper() for code in codes})
    )
    by_code: dict[str, SKU] = {}
    for sku in found:
        by_code[sku.barcode] = sku
        by_code[sku.code] = sku
    quantities: dict[int, int] = {}
    skus: dict[int, SKU] = {}
    scanned: dict[int, str] = {}
    for code, quantity in entries:
        sku = by_code.get(code) or by_code.get(code.upper())
        if sku is None:
            raise refusal(
                "unknown_barcode",
                _("Nothing is sold under the barcode or code “%(code)s”.") % {"code": code},
                code=code,
            )
        quantities[sku.pk] = quantities.get(sku.pk, 0) + quantity
        skus[sku.pk] = sku
        scanned.setdefault(sku.pk, code)
    return Basket(
        lines=[BasketLine(sku_id, quantity) for sku_id, quantity in quantities.items()],
        skus=skus,
        scanned=scanned,
    )


def short_of_stock(store: Store, basket: Basket) -> dict[int, int]:
    """The lines the store cannot hand over now: SKU id -> units it can (the counter may sell
    its safety stock, never what is reserved for orders). One query."""
    available = availability_for_skus(
        sku_ids=[line.sku_id for line in basket.lines], store_ids=[store.pk], online=False
    )
    return {
        line.sku_id: available[(store.pk, line.sku_id)]
        for line in basket.lines
        if available[(store.pk, line.sku_id)] < line.quantity
    }


def stock_refusal(store: Store, basket: Basket) -> BusinessError | None:
    short = short_of_stock(store, basket)
    if not short:
        return None
    sku_id, units = next(iter(short.items()))
    return refusal(
        "insufficient_stock",
        _("Not enough “%(name)s” in stock: %(units)d left.")
        % {"name": basket.skus[sku_id].product.name, "units": units},
        status_code=409,
        sku=basket.skus[sku_id].code,
    )


# --- The member --------------------------------------------------------------------------------


def member_token(member: Member, store: Store) -> str:
    return signing.dumps({"m": member.pk, "s": store.pk}, salt=MEMBER_TOKEN_SALT)


def member_from_token(token: str, store: Store) -> Member:
    """The member the till scanned (the survivor, if she was merged since)."""
    try:
        data = signing.loads(token, salt=MEMBER_TOKEN_SALT, max_age=MEMBER_TOKEN_SECONDS)
    except signing.SignatureExpired:
        raise refusal(
            "member_scan_expired",
            _("The member was scanned too long ago: scan her member code again."),
            member="",
        ) from None
    except signing.BadSignature:
        data = None
    member = None
    if isinstance(data, dict) and data.get("s") == store.pk:
        member = Member.objects.select_related("tier").filter(pk=data.get("m")).first()
        for _hop in range(5):
            if member is None or member.merged_into_id is None:
                break
            member = Member.objects.select_related("tier").filter(pk=member.merged_into_id).first()
    if member is None or member.erased_at is not None or member.merged_into_id is not None:
        raise refusal("member_code_invalid", _("This is not a valid member code."), member="")
    return member


def member_scanned(form: SaleForm, store: Store) -> Member | None:
    """The member of a code scanned just now, or of the till's token, or nobody."""
    code = form.cleaned_data.get("member_code", "").strip()
    if code:
        return member_code_resolve(code=code)
    token = form.cleaned_data.get("member", "")
    return member_from_token(token, store) if token else None


# --- Pricing and the sale ----------------------------------------------------------------------


def sale_quote(*, store: Store, basket: Basket, member: Member | None, form: SaleForm) -> Quote:
    return price_basket(
        store=store,
        lines=basket.lines,
        fulfilment=Fulfilment.COUNTER,
        channel=Channel.COUNTER,
        member=member,
        coupon_code=form.cleaned_data["coupon_code"],
        points_to_redeem=form.cleaned_data["points"] if member is not None else 0,
    )


def sale_submitted(*, store: Store, client_reference: str) -> Order | None:
    """The sale an earlier copy of this submission made, if any (a double click, a resend)."""
    order = (
        Order.objects.filter(channel=Channel.COUNTER, client_reference=client_reference)
        .select_related("store")
        .first()
    )
    if order is not None and order.store_id != store.pk:
        raise refusal(
            "client_reference_taken",
            _("This sale could not be submitted: reload the page and try again."),
            client_reference=client_reference,
        )
    return order


@dataclass(frozen=True)
class Prepared:
    """A sale checked and ready to place: nothing is written yet."""

    basket: Basket
    member: Member | None
    quote: Quote


def sale_prepare(*, store: Store, form: PaidSaleForm) -> Prepared:
    """Everything that can refuse a sale before anything is written: the store, the barcodes,
    the member, the coupon, a price changed since the preview, the stock."""
    check_store_sells(store)
    basket = basket_resolve(form.cleaned_data["basket"])
    member = member_scanned(form, store)
    quote = sale_quote(store=store, basket=basket, member=member, form=form)
    expected = form.cleaned_data.get("expected_total")
    if expected is not None and expected != quote.total_fen:
        raise refusal(
            "price_changed",
            _("The total is now ¥%(total)s, not ¥%(expected)s: check the basket and ask again.")
            % {"total": fen_to_yuan(quote.total_fen), "expected": fen_to_yuan(expected)},
            status_code=409,
            expected_total=str(expected),
        )
    short = stock_refusal(store, basket)
    if short is not None:
        raise short
    return Prepared(basket=basket, member=member, quote=quote)


def sale_place(*, store: Store, prepared: Prepared, form: PaidSaleForm, actor: User) -> Order:
    """The counter order, waiting for its payment, its stock held. A racing copy of the same
    submission gets the same order."""
    try:
        return checkout_place(
            channel=Channel.COUNTER,
            store=store,
            fulfilment=Fulfilment.COUNTER,
            lines=prepared.basket.lines,
            client_reference=form.cleaned_data["client_reference"],
            member=prepared.member,
            coupon_code=form.cleaned_data["coupon_code"],
            points_to_redeem=form.cleaned_data["points"] if prepared.member is not None else 0,
            actor=actor,
            actor_kind=ActorKind.STAFF,
        )
    except BusinessError as error:
        if error.code == "insufficient_stock":
            # Taken since the check (another till): say which item.
            raise stock_refusal(store, prepared.basket) or error from None
        raise


def sale_abandon(*, order: Order, actor: User, reason: str) -> Order:
    """The money did not come: cancel the unpaid sale so its stock, coupon and points go back.
    A sale paid meanwhile (a late answer) stays as it is."""
    try:
        return order_cancel(
            order=order.pk,
            cause=Cause.STAFF,
            actor=actor,
            actor_kind=ActorKind.STAFF,
            note=reason[:200],
        )
    except BusinessError as error:
        logger.warning("counter sale %s not cancelled: %s", order.number, error.code)
        order.refresh_from_db()
        return order
