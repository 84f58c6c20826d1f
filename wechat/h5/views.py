"""The H5 shop's pages. Each view reads a form, calls one service or selector of the shop
(``wechat.services``, ``wechat.selectors``) or of the apps below it, and renders; business rules
live there, not here.

Who the shopper is: the login callback asks WeChat (the sandbox) who the code belongs to and
issues a shopper token exactly as the API's login does; the raw token is kept in the Django
session and checked on every page (``token_authenticate``: expiry, merges, erasure), so the
H5 pages and the API agree on who is logged in. A refused action is shown as a message with
its stable code, and the page is shown again.
"""

import hashlib
import secrets
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework.exceptions import Throttled

from members.services.identity import member_code_issue
from orders.models import ActorKind, Channel, Fulfilment, OrderStatus
from orders.services import order_cancel, order_confirm_receipt, store_serves
from orders.transitions import Cause
from retail.errors import BusinessError
from wechat import selectors
from wechat.api.throttles import (
    CheckoutIPThrottle,
    CheckoutShopperThrottle,
    LoginIPThrottle,
    login_shopper_throttle,
)
from wechat.h5.forms import AddressForm, CartLineForm, CatalogueForm, CheckoutForm, StoreChoiceForm
from wechat.h5.selectors import ShopHeader, cart_quantities, shop_header
from wechat.models import ShopperToken
from wechat.pay.services import shop_order_pay
from wechat.services import auth
from wechat.services.addresses import address_create
from wechat.services.cart import cart_line_set, cart_store_set
from wechat.services.checkout import (
    CheckoutRequest,
    checkout_place_from_cart,
    checkout_preview,
)

SESSION_TOKEN = "shop_token"  # noqa: S105 (a session key's name, not a secret)
SESSION_LOGIN_STATE = "shop_login_state"
SESSION_NEXT = "shop_next"
SESSION_LOCATION = "shop_location"
REAL_WECHAT_HOST = "api.weixin.qq.com"
# Where the store picker looks without the browser's location: People's Square, Shanghai
# (GCJ-02).
DEFAULT_LOCATION = (31.230416, 121.473701)
CATALOGUE_PAGE = 20
ORDERS_PAGE = 20
# The API shows the pickup code from payment until the goods are handed over; so do the pages.
PICKUP_CODE_SHOWN = (OrderStatus.PAID, OrderStatus.READY_FOR_PICKUP)
QR_SIZE = 21


# --- who is shopping -------------------------------------------------------------------------


def _refused(request: HttpRequest, error: BusinessError) -> None:
    """A refusal as the shopper reads it: the service's message and its stable code."""
    messages.error(request, format_html("{} <code>{}</code>", error.message, error.code))


def _invalid(request: HttpRequest, form) -> None:
    fields = ", ".join(sorted(form.errors))
    _refused(
        request,
        BusinessError(
            "validation_error", _("Some fields are not valid: %(fields)s.") % {"fields": fields}
        ),
    )


def _shopper_token(request: HttpRequest) -> ShopperToken | None:
    raw = request.session.get(SESSION_TOKEN)
    if not raw:
        return None
    try:
        return auth.token_authenticate(raw)
    except BusinessError as refused:
        request.session.pop(SESSION_TOKEN, None)
        _refused(request, refused)
        return None


def shopper_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The page needs a logged-in shopper: ``request.shopper`` is her token (``.member``);
    without one, the login page, coming back here afterwards."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        token = _shopper_token(request)
        if token is None:
            query = urlencode({"next": request.get_full_path()})
            return redirect(f"{reverse('shop:login')}?{query}")
        request.shopper = token
        return view(request, *args, **kwargs)

    return wrapped


def _safe_next(request: HttpRequest, target: str | None) -> str:
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("shop:index")


def _client_ip(request: HttpRequest) -> str:
    # WeChat wants the shopper's address with a payment; behind a proxy, REMOTE_ADDR is the
    # proxy's, which is what WeChat's own H5 guidance accepts for a server-side prepay.
    return request.META.get("REMOTE_ADDR") or "127.0.0.1"


# --- login -----------------------------------------------------------------------------------


def _sandbox_base() -> str | None:
    """The sandbox as the shopper's browser reaches it; None when the platform talks to the
    real WeChat, which has no pages for a browser outside WeChat."""
    base = settings.WECHAT_SANDBOX_PUBLIC_URL or settings.WECHAT_API_BASE_URL
    if not settings.WECHAT_SANDBOX_PUBLIC_URL and REAL_WECHAT_HOST in base:
        return None
    return base.rstrip("/")


def sandbox_login_url() -> str | None:
    """The sandbox's "pick a WeChat user" page; None against the real WeChat."""
    base = _sandbox_base()
    return None if base is None else base + "/sandbox/login"


def sandbox_cashier_url(*, out_trade_no: str, parameters: dict, back: str) -> str | None:
    """The sandbox's cashier for this trade, playing WeChat's payment sheet: it checks the
    ``wx.requestPayment`` parameters, takes the payment, sends the notify and comes ``back``.
    None against the real WeChat, where only WeChat's own browser shows the sheet."""
    base = _sandbox_base()
    if base is None:
        return None
    query = urlencode({**parameters, "redirect": back})
    return f"{base}/sandbox/pay/{settings.WECHAT_PAY_VERSION}/{out_trade_no}?{query}"


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    if _shopper_token(request) is None:
        return redirect("shop:login")
    return redirect("shop:catalogue")


@require_GET
def login(request: HttpRequest) -> HttpResponse:
    """The welcome page: its button goes to the sandbox's "pick a WeChat user" page, which
    comes back to the callback with a one-time code and the ``state`` made here."""
    if _shopper_token(request) is not None:
        return redirect(_safe_next(request, request.GET.get("next")))
    sandbox = sandbox_login_url()
    wechat_url = None
    if sandbox is not None:
        state = secrets.token_urlsafe(16)
        request.session[SESSION_LOGIN_STATE] = state
        request.session[SESSION_NEXT] = _safe_next(request, request.GET.get("next"))
        callback = request.build_absolute_uri(reverse("shop:login-callback"))
        wechat_url = f"{sandbox}?{urlencode({'redirect': callback, 'state': state})}"
    return render(request, "shop/login.html", {"wechat_url": wechat_url})


@require_GET
def login_callback(request: HttpRequest) -> HttpResponse:
    """Back from the sandbox with ``code`` (what ``wx.login()`` gives) and our ``state``."""
    expected = request.session.pop(SESSION_LOGIN_STATE, None)
    target = request.session.pop(SESSION_NEXT, None) or reverse("shop:index")
    code = request.GET.get("code", "")
    if not expected or not secrets.compare_digest(expected, request.GET.get("state", "")):
        _refused(
            request,
            BusinessError("login_state_mismatch", _("This login link is stale: log in again.")),
        )
        return redirect("shop:login")
    if not code:
        _refused(request, BusinessError("login_cancelled", _("WeChat login was cancelled.")))
        return redirect("shop:login")
    try:
        if not LoginIPThrottle().allow_request(request, None):
            raise Throttled
        session = auth.wechat_session_for_code(code=code)
        login_shopper_throttle(request, openid=session.get("openid", ""))
        login = auth.shopper_login_wechat(session=session)
    except BusinessError as refused:
        _refused(request, refused)
        return redirect("shop:login")
    except Throttled:
        _refused(request, _throttled())
        return redirect("shop:login")
    # A new session key at login: a session id planted before it is worth nothing after.
    request.session.cycle_key()
    request.session[SESSION_TOKEN] = login.token
    messages.success(request, _("Welcome, %(name)s.") % {"name": _member_name(login.member)})
    return HttpResponseRedirect(target)


def _throttled() -> BusinessError:
    return BusinessError("throttled", _("Too many attempts: wait a minute and try again."))


def _member_name(member) -> str:
    return member.name or member.masked_mobile or _("WeChat shopper")


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    token = _shopper_token(request)
    if token is not None:
        auth.token_revoke(token=token)
    request.session.flush()
    return redirect("shop:login")


# --- pages around the content ---------------------------------------------------------------


def _page(
    request: HttpRequest,
    template: str,
    context: dict,
    *,
    tab: str = "",
    header: ShopHeader | None = None,
) -> HttpResponse:
    """Render a shop page with what every page shows: the chosen store and the cart count."""
    header = header or shop_header(member=request.shopper.member)
    return render(request, template, {"shop": header, "tab": tab, **context})


def _choose_store_first(request: HttpRequest) -> HttpResponse:
    messages.info(request, _("Choose a store first."))
    query = urlencode({"next": request.get_full_path()})
    return redirect(f"{reverse('shop:stores')}?{query}")


# --- store picker ----------------------------------------------------------------------------


def _location(request: HttpRequest) -> tuple[float, float, bool]:
    """The shopper's point (GCJ-02) from ``?lat=&lng=``, else the one she gave before, else
    the default; and whether it is hers."""
    try:
        latitude, longitude = float(request.GET["lat"]), float(request.GET["lng"])
    except (KeyError, ValueError):
        saved = request.session.get(SESSION_LOCATION)
        if saved:
            return saved[0], saved[1], True
        return *DEFAULT_LOCATION, False
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return *DEFAULT_LOCATION, False
    request.session[SESSION_LOCATION] = [latitude, longitude]
    return latitude, longitude, True


@shopper_required
@require_http_methods(["GET", "POST"])
def stores(request: HttpRequest) -> HttpResponse:
    """Nearest stores first, open or not (closed ones say so); choosing one makes it the cart's
    store, where availability and prices are then read."""
    if request.method == "POST":
        form = StoreChoiceForm(request.POST)
        if not form.is_valid():
            _invalid(request, form)
            return redirect("shop:stores")
        try:
            cart = cart_store_set(member=request.shopper.member, store=form.cleaned_data["store"])
        except BusinessError as refused:
            _refused(request, refused)
            return redirect("shop:stores")
        messages.success(request, _("Shopping at %(store)s.") % {"store": cart.store.name})
        return redirect(_safe_next(request, request.POST.get("next") or reverse("shop:catalogue")))
    latitude, longitude, located = _location(request)
    cards = selectors.shop_stores_near(
        latitude=latitude, longitude=longitude, now=timezone.now(), include_closed=True
    )
    context = {
        "cards": cards,
        "located": located,
        "next": request.GET.get("next", ""),
    }
    return _page(request, "shop/stores.html", context, tab="stores")


# --- catalogue and product -------------------------------------------------------------------


@shopper_required
@require_GET
def catalogue(request: HttpRequest) -> HttpResponse:
    header = shop_header(member=request.shopper.member)
    if header.store is None:
        return _choose_store_first(request)
    categories = list(selectors.shop_categories())
    form = CatalogueForm(request.GET, categories=categories)
    products = selectors.shop_products()
    chosen = None
    if form.is_valid():
        chosen = form.cleaned_data["category"]
        if chosen is not None:
            products = selectors.shop_products_in_category(products, chosen)
        if form.cleaned_data["q"].strip():
            products = selectors.shop_products_matching(products, form.cleaned_data["q"])
        if form.cleaned_data["in_stock"]:
            products = selectors.shop_products_available(products, store=header.store, online=False)
    page = Paginator(products.order_by("code"), CATALOGUE_PAGE).get_page(request.GET.get("page"))
    availability = selectors.shop_availability(
        sku_ids=[sku.pk for product in page for sku in product.shop_skus], store=header.store
    )
    rows = [
        {
            "product": product,
            "sku": min(product.shop_skus, key=lambda sku: (sku.price_fen, sku.code)),
            "available": sum(availability.at(sku.pk) or 0 for sku in product.shop_skus),
        }
        for product in page
    ]
    top = [category for category in categories if category.parent_id is None]
    parent_id = None if chosen is None else (chosen.parent_id or chosen.pk)
    context = {
        "form": form,
        "rows": rows,
        "page": page,
        "top_categories": top,
        "sub_categories": [c for c in categories if parent_id and c.parent_id == parent_id],
        "chosen": chosen,
        "chosen_top": parent_id,
        "query_without_page": _query_without(request, "page"),
    }
    return _page(request, "shop/catalogue.html", context, tab="catalogue", header=header)


def _query_without(request: HttpRequest, *names: str) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


@shopper_required
@require_GET
def product(request: HttpRequest, product_id: int) -> HttpResponse:
    member = request.shopper.member
    header = shop_header(member=member)
    if header.store is None:
        return _choose_store_first(request)
    item = selectors.shop_product(product_id=product_id)
    availability = selectors.shop_availability(
        sku_ids=[sku.pk for sku in item.shop_skus], store=header.store
    )
    in_cart = cart_quantities(member=member, sku_ids=[sku.pk for sku in item.shop_skus])
    skus = [
        {
            "sku": sku,
            "available": availability.at(sku.pk) or 0,
            "online": availability.shipped(sku.pk),
            "in_cart": in_cart.get(sku.pk, 0),
        }
        for sku in item.shop_skus
    ]
    recommendations = selectors.shop_recommendations(
        member=member, store=header.store, product=item, limit=6
    )
    context = {"product": item, "skus": skus, "recommendations": recommendations}
    return _page(request, "shop/product.html", context, tab="catalogue", header=header)


# --- cart ------------------------------------------------------------------------------------


@shopper_required
@require_http_methods(["GET", "POST"])
def cart(request: HttpRequest) -> HttpResponse:
    """The cart at the chosen store; its forms set a line's quantity (0 removes it)."""
    member = request.shopper.member
    if request.method == "POST":
        back = _safe_next(request, request.POST.get("next") or reverse("shop:cart"))
        form = CartLineForm(request.POST)
        if not form.is_valid():
            _invalid(request, form)
            return redirect(back)
        try:
            cart_line_set(
                member=member, sku=form.cleaned_data["sku"], quantity=form.cleaned_data["quantity"]
            )
        except BusinessError as refused:
            _refused(request, refused)
        else:
            if form.cleaned_data["quantity"] and request.POST.get("next"):
                messages.success(request, _("The cart is updated."))
        return redirect(back)
    summary = selectors.cart_summary(member=member, channel=Channel.H5)
    header = ShopHeader(member=member, store=summary.store, cart_count=len(summary.items))
    context = {
        "summary": summary,
        "short": any(item.enough is False or not item.sellable for item in summary.items),
    }
    return _page(request, "shop/cart.html", context, tab="cart", header=header)


# --- checkout --------------------------------------------------------------------------------


class _AsShopper:
    """The request as the API's throttles read it: ``user.member`` is the shopper."""

    def __init__(self, request: HttpRequest):
        self._request = request
        self.user = request.shopper

    def __getattr__(self, name: str):
        return getattr(self._request, name)


def _checkout_allowed(request: HttpRequest) -> bool:
    """The API's checkout rate limits, per shopper and per client address."""
    caller = _AsShopper(request)
    return all(
        throttle.allow_request(caller, None)
        for throttle in (CheckoutShopperThrottle(), CheckoutIPThrottle())
    )


@shopper_required
@require_http_methods(["GET", "POST"])
def checkout(request: HttpRequest) -> HttpResponse:
    """Pickup at the chosen store or delivery to one of her addresses, a coupon and points,
    the price breakdown; "place" makes the order. The form carries a reference made when the
    page was first shown, so a second click or a resent form answers with the same order."""
    member = request.shopper.member
    header = shop_header(member=member)
    if header.store is None:
        return _choose_store_first(request)
    addresses = list(selectors.shop_addresses(member=member))
    coupons = list(
        selectors.shop_coupons(
            member=member, state=selectors.CouponState.AVAILABLE, now=timezone.now()
        )
    )
    if request.method == "POST":
        form = CheckoutForm(request.POST, addresses=addresses, coupons=coupons)
    else:
        default = next((address.pk for address in addresses if address.is_default), None)
        form = CheckoutForm(
            addresses=addresses,
            coupons=coupons,
            initial={
                "fulfilment": request.GET.get("fulfilment") or Fulfilment.PICKUP,
                "address": request.GET.get("address") or default,
                "points": 0,
                "client_reference": CheckoutForm.new_reference(),
            },
        )
    data = form.cleaned_data if form.is_bound and form.is_valid() else _initial(form)
    asked = CheckoutRequest(
        fulfilment=data["fulfilment"],
        address_id=data["address"] if data["fulfilment"] == Fulfilment.DELIVERY else None,
        coupon_code=data["coupon_code"] or "",
        points=data["points"] or 0,
    )
    if form.is_bound and not form.is_valid():
        _invalid(request, form)
    elif form.is_bound and data["action"] == CheckoutForm.PLACE:
        placed = _place(request, asked, data)
        if placed is not None:
            return placed
    preview = None
    try:
        preview = checkout_preview(member=member, asked=asked, channel=Channel.H5)
    except BusinessError as refused:
        _refused(request, refused)
    lines = [
        {
            "line": line,
            "short_of": preview.available[line.sku.pk]
            if preview.available[line.sku.pk] < line.quantity
            else None,
        }
        for line in (preview.quote.lines if preview is not None else [])
    ]
    context = {
        "form": form,
        "preview": preview,
        "lines": lines,
        "fulfilment": asked.fulfilment,
        "addresses": addresses,
        "serves": {
            Fulfilment.PICKUP: store_serves(header.store, Fulfilment.PICKUP),
            Fulfilment.DELIVERY: store_serves(header.store, Fulfilment.DELIVERY),
        },
    }
    return _page(request, "shop/checkout.html", context, tab="cart", header=header)


def _initial(form: CheckoutForm) -> dict:
    values = {name: form[name].value() for name in form.fields}
    try:
        values["address"] = int(values["address"]) if values["address"] else None
        values["points"] = int(values["points"] or 0)
    except (TypeError, ValueError):
        values["address"], values["points"] = None, 0
    if values["fulfilment"] not in (Fulfilment.PICKUP, Fulfilment.DELIVERY):
        values["fulfilment"] = Fulfilment.PICKUP
    return values


def _place(request: HttpRequest, asked: CheckoutRequest, data: dict) -> HttpResponse | None:
    if not _checkout_allowed(request):
        _refused(request, _throttled())
        return None
    try:
        order, created = checkout_place_from_cart(
            member=request.shopper.member,
            asked=asked,
            channel=Channel.H5,
            client_reference=data["client_reference"],
            note=data["note"] or "",
        )
    except BusinessError as refused:
        _refused(request, refused)
        return None
    if created:
        messages.success(request, _("Order %(number)s is placed.") % {"number": order.number})
    return redirect("shop:order", number=order.number)


@shopper_required
@require_http_methods(["GET", "POST"])
def address_new(request: HttpRequest) -> HttpResponse:
    """A new delivery address; back to checkout with it chosen."""
    form = AddressForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            address = address_create(member=request.shopper.member, **form.cleaned_data)
        except BusinessError as refused:
            _refused(request, refused)
        else:
            query = urlencode({"fulfilment": Fulfilment.DELIVERY, "address": address.pk})
            return redirect(f"{reverse('shop:checkout')}?{query}")
    return _page(request, "shop/address_form.html", {"form": form}, tab="cart")


# --- orders ----------------------------------------------------------------------------------


@shopper_required
@require_GET
def orders(request: HttpRequest) -> HttpResponse:
    member = request.shopper.member
    page = Paginator(selectors.shop_orders(member=member), ORDERS_PAGE).get_page(
        request.GET.get("page")
    )
    return _page(request, "shop/orders.html", {"page": page}, tab="orders")


@shopper_required
@require_http_methods(["GET", "POST"])
def order(request: HttpRequest, number: str) -> HttpResponse:
    """One order: lines, price breakdown, pickup code or address, timeline; cancel while
    unpaid, confirm receipt once shipped."""
    member = request.shopper.member
    if request.method == "POST":
        found = selectors.shop_order_for_action(member=member, number=number)
        try:
            if request.POST.get("action") == "cancel":
                order_cancel(order=found.pk, cause=Cause.SHOPPER, actor_kind=ActorKind.SHOPPER)
                messages.success(request, _("The order is cancelled."))
            elif request.POST.get("action") == "confirm_receipt":
                order_confirm_receipt(order=found.pk)
                messages.success(request, _("Thank you: the order is completed."))
            elif request.POST.get("action") == "pay":
                started = shop_order_pay(order=found.pk, client_ip=_client_ip(request))
                cashier = sandbox_cashier_url(
                    out_trade_no=started.payment.out_trade_no,
                    parameters=started.parameters,
                    back=request.build_absolute_uri(reverse("shop:order", args=[number])),
                )
                if cashier is not None:
                    return HttpResponseRedirect(cashier)
                messages.info(request, _("Open the mini-program in WeChat to pay this order."))
        except BusinessError as refused:
            _refused(request, refused)
        return redirect("shop:order", number=number)
    detail = selectors.shop_order_detail(member=member, number=number)
    context = {
        "order": detail,
        "timeline": [_timeline_entry(event) for event in detail.events.all()],
        "pickup_code": detail.pickup_code if detail.status in PICKUP_CODE_SHOWN else "",
        "can_cancel": detail.status == OrderStatus.PENDING_PAYMENT,
        "can_pay": detail.status == OrderStatus.PENDING_PAYMENT,
        "can_confirm": detail.status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED),
    }
    return _page(request, "shop/order.html", context, tab="orders")


def _timeline_entry(event) -> dict:
    """An order event as the shopper reads it: what it became, and why."""
    what = {
        "order.created": _("Order placed"),
        "order.partially_shipped": _("Part of the order shipped"),
        "refund.requested": _("Refund requested"),
        "refund.succeeded": _("Refunded"),
        "payment.after_cancel": _("Payment arrived after cancelling: refunded"),
    }.get(event.kind)
    if what is None:
        what = OrderStatus(event.to_status).label if event.to_status else event.kind
    cause = (event.data or {}).get("cause")
    why = Cause(cause).label if cause in Cause.values else ""
    return {"at": event.created_at, "what": what, "why": why}


# --- member ----------------------------------------------------------------------------------


@shopper_required
@require_GET
def member_code(request: HttpRequest) -> HttpResponse:
    """The member code for the counter to scan, renewed every minute (a code lasts
    ``MEMBER_CODE_TTL_SECONDS``), with tier, points and coupons."""
    shopper = request.shopper.member
    try:
        code = member_code_issue(member=shopper)
    except BusinessError as refused:
        _refused(request, refused)
        code = ""
    context = {
        "member": shopper,
        "code": code,
        "pattern": _pattern(code),
        "refresh_seconds": 60,
        "coupon_count": selectors.shop_coupon_count(member=shopper, now=timezone.now()),
        "name": _member_name(shopper),
    }
    return _page(request, "shop/member.html", context, tab="member")


def _pattern(code: str) -> list[bool]:
    """A QR-like picture of the code, for the eye only (the counter types or scans the text
    under it): the three corner squares and the code's SHA-256 bits in between."""
    if not code:
        return []
    bits = "".join(f"{byte:08b}" for byte in hashlib.sha256(code.encode()).digest() * 2)
    cells = []
    for row in range(QR_SIZE):
        for column in range(QR_SIZE):
            finder = _finder_cell(row, column)
            cells.append(finder if finder is not None else bits[row * QR_SIZE + column] == "1")
    return cells


def _finder_cell(row: int, column: int) -> bool | None:
    for top, left in ((0, 0), (0, QR_SIZE - 7), (QR_SIZE - 7, 0)):
        if top - 1 <= row <= top + 7 and left - 1 <= column <= left + 7:
            r, c = row - top, column - left
            if not (0 <= r < 7 and 0 <= c < 7):
                return False
            return r in (0, 6) or c in (0, 6) or (2 <= r <= 4 and 2 <= c <= 4)
    return None
