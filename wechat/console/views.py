"""Console: a counter sale paid by the shopper's WeChat payment code.

The till's page (``orders.console.pos``) posts the basket here with the 18-digit code the
scanner read. The sale is placed as for cash, then charged through ``counter_pay_by_code``,
the service the staff API's ``pay-by-code`` uses (it waits while the shopper confirms on her
phone, up to ``WECHAT_PAY_CODEPAY_DEADLINE_SECONDS``). Refused, failed or not confirmed in
time: the sale is cancelled, so no stock moves, and the till keeps the basket for another try.
"""

import time

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from orders.console.pos import (
    PERMISSION,
    pos_url,
    receipt_url,
    refused,
    submitted_again,
)
from orders.console.pos_forms import (
    CodeSaleForm,
    form_refusal,
    sale_abandon,
    sale_place,
    sale_prepare,
    sale_submitted,
)
from orders.models import Order
from retail.console import console_view
from retail.errors import BusinessError
from wechat.pay.services import counter_pay_by_code

S = Order.Status
# How often a second copy of a submission looks at the sale the first copy is charging.
AWAIT_POLL_SECONDS = 0.5


def _await_first_copy(request: HttpRequest, order: Order, client_reference: str) -> HttpResponse:
    """A double click: the first copy is charging the code. Wait for its outcome and answer
    with it (the browser shows this answer, not the first)."""
    give_up_at = time.monotonic() + settings.WECHAT_PAY_CODEPAY_DEADLINE_SECONDS + 5
    while True:
        order.refresh_from_db(fields=["status"])
        if order.status != S.PENDING_PAYMENT or time.monotonic() >= give_up_at:
            break
        time.sleep(AWAIT_POLL_SECONDS)
    if order.status == S.PENDING_PAYMENT:
        messages.error(request, _("This sale is already being paid; wait for the answer."))
        return redirect(pos_url(request.console_store.code))
    return submitted_again(request, order, client_reference)


@console_view(PERMISSION)
@require_POST
def pos_pay_by_code(request: HttpRequest, store_code: str) -> HttpResponse:
    store = request.console_store
    form = CodeSaleForm(request.POST)
    if not form.is_valid():
        return refused(request, form_refusal(form), retry=request.POST.get("client_reference", ""))
    client_reference = form.cleaned_data["client_reference"]
    try:
        order = sale_submitted(store=store, client_reference=client_reference)
        if order is None:
            prepared = sale_prepare(store=store, form=form)
            order = sale_place(store=store, prepared=prepared, form=form, actor=request.user)
        elif order.status != S.PENDING_PAYMENT:
            return submitted_again(request, order, client_reference)
    except BusinessError as error:
        return refused(request, error, retry=client_reference)
    try:
        counter_pay_by_code(
            order=order.pk, auth_code=form.cleaned_data["auth_code"], actor=request.user
        )
    except BusinessError as error:
        if error.code == "payment_in_progress":
            return _await_first_copy(request, order, client_reference)
        order = sale_abandon(order=order, actor=request.user, reason=f"WeChat Pay: {error.code}")
        if order.status == S.COMPLETED:
            # Paid after all (a late answer): the sale stands.
            return redirect(receipt_url(order))
        if error.code == "wechat_pay_unavailable":
            after = _(
                "The sale was cancelled; should the shopper have been charged, the money "
                "goes back to her by itself."
            )
        else:
            after = _(
                "The sale was cancelled and nothing was charged: scan a new code or take cash."
            )
        messages.error(request, f"{error.message} {after}")
        return redirect(pos_url(store.code, retry=client_reference))
    return redirect(receipt_url(order))
