"""Console: the counter sale (POS).

The till's page keeps the basket in the browser (``orders/static/console/pos.js``): each scan
asks ``pos/quote/`` for the price preview (tier price, the member's coupons and points, by the
one pricing function), and the sale is submitted once, with an id the browser made, to be paid
in cash here or by WeChat payment code (``wechat.console.views``). The same id twice is one
sale; a payment that fails cancels the sale, so no stock moves, and the browser keeps the
basket for another try under a new id.
"""

from django.contrib import messages
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views.decorators.http import require_GET, require_POST

from members.models import Coupon, Member, PointsEntry, Scope
from members.selectors import member_coupons, member_points_entries
from orders.console.pos_forms import (
    Basket,
    CashSaleForm,
    SaleForm,
    basket_resolve,
    check_store_sells,
    form_refusal,
    member_scanned,
    member_token,
    refusal,
    sale_abandon,
    sale_place,
    sale_prepare,
    sale_quote,
    sale_submitted,
    short_of_stock,
)
from orders.models import Channel, Fulfilment, Order, OrderLine, Payment
from orders.payments import counter_sale_pay_cash
from orders.pricing import Quote
from orders.services import store_serves
from retail.console import console_view
from retail.console.context import console_frame
from retail.errors import BusinessError
from retail.money import fen_to_yuan

PERMISSION = "orders.add_order"
RECEIPT_PERMISSION = "orders.view_order"
S = Order.Status


def _yuan(fen: int) -> str:
    return f"¥{fen_to_yuan(fen)}"


def _texts() -> dict[str, str]:
    """What the till's script writes on the page, in the page's language."""
    return {
        "remove": _("Remove"),
        "quantity": _("Quantity"),
        "only_left": _("only %(units)s left"),
        "change": pgettext("cash", "Change"),
        "short": _("Short by"),
        "paying_cash": _("Completing the sale…"),
        "paying_wechat": _("Waiting for WeChat Pay: the shopper may need to confirm on her phone…"),
        "network": _("The till could not reach the server: check the connection and try again."),
        "empty": _("The basket is empty: scan the first item."),
    }


@console_view(PERMISSION)
@require_GET
def page(request: HttpRequest, store_code: str) -> HttpResponse:
    store = request.console_store
    context = console_frame(request, section="pos")
    context.update(serves=store_serves(store, Fulfilment.COUNTER), pos_texts=_texts())
    return render(request, "console/pos.html", context)


# --- The price preview -------------------------------------------------------------------------


def _coupon_row(coupon: Coupon) -> dict:
    template = coupon.template
    return {
        "code": coupon.code,
        "name": template.name,
        "kind": template.get_kind_display(),
        "until": coupon.valid_until.date().isoformat(),
    }


def _member_answer(member: Member, store) -> dict:
    coupons = [
        _coupon_row(coupon)
        for coupon in member_coupons(member=member, usable_at=timezone.now())
        if coupon.template.scope in (Scope.ALL, Scope.COUNTER)
    ]
    return {
        "token": member_token(member, store),
        "name": member.name or member.masked_mobile,
        "mobile": member.masked_mobile,
        "tier": member.tier.name if member.tier_id else "",
        "tier_discount_percent": member.tier.discount_percent if member.tier_id else 0,
        "points_balance": member.points_balance,
        "coupons": coupons,
    }


def _quote_answer(quote: Quote | None, basket: Basket, short: dict[int, int]) -> dict:
    lines = []
    if quote is not None:
        for line in quote.lines:
            lines.append(
                {
                    "code": basket.scanned[line.sku.pk],
                    "sku": line.sku.code,
                    "barcode": line.sku.barcode,
                    "name": line.sku.product.name,
                    "spec": line.sku.spec_label,
                    "quantity": line.quantity,
                    "unit": _yuan(line.unit_price_fen),
                    "discount": _yuan(line.discount_fen) if line.discount_fen else "",
                    "total": _yuan(line.total_fen),
                    "short": short.get(line.sku.pk),
                }
            )
    breakdown = quote.breakdown if quote is not None else {}
    return {
        "lines": lines,
        "subtotal": _yuan(quote.subtotal_fen if quote else 0),
        "discounts": [
            {"label": label, "amount": _yuan(breakdown[key])}
            for key, label in (
                ("promotion_fen", _("Promotions")),
                ("tier_fen", _("Member discount")),
                ("coupon_fen", _("Coupon")),
                ("points_fen", _("Points")),
            )
            if breakdown.get(key)
        ],
        "total": _yuan(quote.total_fen if quote else 0),
        "total_fen": quote.total_fen if quote else 0,
        "points_redeemed": quote.points_redeemed if quote else 0,
        "coupon_code": quote.coupon.code if quote is not None and quote.coupon else "",
    }


def _error_answer(error: BusinessError) -> JsonResponse:
    return JsonResponse(
        {"error": {"code": error.code, "message": str(error.message), "fields": error.fields}},
        status=error.status_code,
    )


@console_view(PERMISSION)
@require_POST
def quote(request: HttpRequest, store_code: str) -> JsonResponse:
    """The basket priced as it would be charged, with the member's tier, coupons and points;
    writes nothing. A coupon or a member scan that no longer holds is dropped with a
    warning, so the rest of the basket still prices."""
    store = request.console_store
    form = SaleForm(request.POST)
    try:
        check_store_sells(store)
        if not form.is_valid():
            raise form_refusal(form)
        basket = basket_resolve(form.cleaned_data["basket"])
        warnings = []
        try:
            member = member_scanned(form, store)
        except BusinessError as error:
            if form.cleaned_data["member_code"]:
                raise
            member = None
            warnings.append(str(error.message))
        answer_quote = None
        if basket.lines:
            try:
                answer_quote = sale_quote(store=store, basket=basket, member=member, form=form)
            except BusinessError as error:
                if not form.cleaned_data["coupon_code"] or "coupon_code" not in error.fields:
                    raise
                warnings.append(str(error.message))
                form.cleaned_data["coupon_code"] = ""
                answer_quote = sale_quote(store=store, basket=basket, member=member, form=form)
        short = short_of_stock(store, basket) if basket.lines else {}
    except BusinessError as error:
        return _error_answer(error)
    answer = _quote_answer(answer_quote, basket, short)
    answer["member"] = _member_answer(member, store) if member is not None else None
    answer["warnings"] = warnings
    return JsonResponse(answer)


# --- Paying cash -------------------------------------------------------------------------------


def pos_url(store_code: str, *, retry: str = "") -> str:
    """Back to the till; ``retry`` names the attempt that failed, so the page starts a new
    one with the same basket."""
    url = reverse("console:pos", kwargs={"store_code": store_code})
    return f"{url}?{urlencode({'retry': retry})}" if retry else url


def receipt_url(order: Order) -> str:
    return reverse(
        "console:pos-receipt", kwargs={"store_code": order.store.code, "number": order.number}
    )


def refused(request: HttpRequest, error: BusinessError, *, retry: str = "") -> HttpResponse:
    messages.error(request, error.message)
    return redirect(pos_url(request.console_store.code, retry=retry))


def submitted_again(request: HttpRequest, order: Order, client_reference: str) -> HttpResponse:
    """The answer to a copy of a submission whose sale exists: its receipt, or why not."""
    if order.status == S.COMPLETED:
        return redirect(receipt_url(order))
    if order.status == S.CANCELLED:
        return refused(
            request,
            refusal(
                "sale_cancelled",
                _("This attempt was cancelled and charged nothing: submit the sale again."),
            ),
            retry=client_reference,
        )
    return refused(
        request,
        refusal("payment_in_progress", _("This sale is already being paid; wait for the answer.")),
    )


def cash_short(tendered: int, total: int) -> BusinessError:
    return refusal(
        "cash_short",
        _("¥%(tendered)s received is ¥%(short)s short of the total ¥%(total)s.")
        % {
            "tendered": fen_to_yuan(tendered),
            "short": fen_to_yuan(total - tendered),
            "total": fen_to_yuan(total),
        },
        tendered=fen_to_yuan(tendered),
    )


@console_view(PERMISSION)
@require_POST
def pay_cash(request: HttpRequest, store_code: str) -> HttpResponse:
    """Place the sale and take the cash for it; the receipt shows the change. Short cash,
    an unknown barcode, stock that is not there: refused before anything is written."""
    store = request.console_store
    form = CashSaleForm(request.POST)
    if not form.is_valid():
        return refused(request, form_refusal(form), retry=request.POST.get("client_reference", ""))
    client_reference = form.cleaned_data["client_reference"]
    tendered = form.cleaned_data["tendered"]
    try:
        order = sale_submitted(store=store, client_reference=client_reference)
        if order is None:
            prepared = sale_prepare(store=store, form=form)
            if tendered < prepared.quote.total_fen:
                raise cash_short(tendered, prepared.quote.total_fen)
            order = sale_place(store=store, prepared=prepared, form=form, actor=request.user)
        elif order.status != S.PENDING_PAYMENT:
            return submitted_again(request, order, client_reference)
    except BusinessError as error:
        return refused(request, error, retry=client_reference)
    try:
        counter_sale_pay_cash(order=order.pk, tendered_fen=tendered, actor=request.user)
    except BusinessError as error:
        # Short of the total of a sale an earlier copy placed, or the sale ran out of time.
        sale_abandon(order=order, actor=request.user, reason=f"cash: {error.code}")
        if error.code == "cash_short":
            error = cash_short(tendered, order.total_fen)
        return refused(request, error, retry=client_reference)
    return redirect(receipt_url(order))


# --- The receipt -------------------------------------------------------------------------------


@console_view(RECEIPT_PERMISSION)
@require_GET
def receipt(request: HttpRequest, store_code: str, number: str) -> HttpResponse:
    store = request.console_store
    order = get_object_or_404(
        Order.objects.filter(store=store, channel=Channel.COUNTER)
        .select_related("member__tier", "created_by")
        .prefetch_related(
            Prefetch("lines", queryset=OrderLine.objects.order_by("pk")),
            Prefetch(
                "payments",
                queryset=Payment.objects.filter(status=Payment.Status.SUCCEEDED).order_by("pk"),
                to_attr="paid_payments",
            ),
        ),
        number=number,
    )
    payment = order.paid_payments[0] if order.paid_payments else None
    tendered = change = None
    if payment is not None:
        tendered = payment.raw_payload.get("tendered_fen", payment.amount_fen)
        change = tendered - payment.amount_fen
    points_earned = 0
    if order.member is not None and order.status == S.COMPLETED:
        earned = (
            member_points_entries(member=order.member)
            .filter(reason=PointsEntry.Reason.EARN, reference=order.number)
            .values_list("points", flat=True)
            .first()
        )
        points_earned = earned or 0
    pricing = order.pricing or {}
    context = console_frame(request, section="pos")
    context.update(
        order=order,
        payment=payment,
        tendered=tendered,
        change=change,
        points_earned=points_earned,
        discounts=[
            (label, pricing.get(key, 0))
            for key, label in (
                ("promotion_fen", _("Promotions")),
                ("tier_fen", _("Member discount")),
                ("coupon_fen", _("Coupon")),
                ("points_fen", _("Points")),
            )
            if pricing.get(key)
        ],
    )
    return render(request, "console/receipt.html", context)


urlpatterns = [
    path("pos/", page, name="pos"),
    path("pos/quote/", quote, name="pos-quote"),
    path("pos/cash/", pay_cash, name="pos-cash"),
    path("pos/receipt/<str:number>/", receipt, name="pos-receipt"),
]
