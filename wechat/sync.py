"""Order status out to WeChat: the shipping-info upload and subscribe messages, as two outbox
subscribers (``sync_subscribe``, called by ``wechat.apps``; the core never imports this).

Two subscribers, so that trouble with one never holds the other back (the outbox keeps the
events of one order in order per subscriber, and a dead delivery blocks nothing):

- ``wechat_shipping``. A mini-program taking WeChat Pay must upload the shipping of every paid
  order, or the money stays frozen; only orders paid with WeChat Pay are uploaded, the payment
  named by its transaction id, the payer by her WeChat identity. Courier parcels are
  ``logistics_type`` 1 with WeChat's delivery id for the carrier (``WECHAT_DELIVERY_IDS``): an
  order in one parcel is one unified upload; in several, a split upload, each partial shipment
  its parcel and the last with ``is_all_delivered`` (at most 15 parcels: from the 15th on,
  partial parcels wait for the last one). Orders carried by same-city riders
  (``WECHAT_SAME_CITY_CARRIERS``) are uploaded as same-city delivery (2) once they have left,
  pickup orders (4) when their goods are ready. The upload time is the event's, so WeChat sees
  the uploads of one payment in the order they happened and a late repeat of an old event
  cannot overwrite newer information; nothing is uploaded a second time on purpose (WeChat
  allows one correction per payment; 10060003 beyond it is given up).
- ``wechat_messages``. Subscribe messages on paid, shipped, ready for pickup and refunded, from
  the templates of ``WECHAT_SUBSCRIBE_TEMPLATES`` (one not configured is not sent); to members
  with a WeChat identity. 43101 (the shopper has not allowed the template) is given up and
  recorded, never retried.

Never twice. Every call is recorded under the outbox event id (``SyncCall``) before it goes
out and again with WeChat's answer: a delivery run again after WeChat accepted its call does
not call again. A call that got no answer (a read timeout, a worker gone mid-call) may have
been acted on: an upload is sent again (WeChat recognises the same information, which the
client reports as ``already_uploaded``: done), a subscribe message is not (the shopper would
get it twice): its delivery is given up, and only a staff retry of it sends it again.
WeChat busy (-1), a token or rate-limit error, 5xx and unreachable are "try again later".
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from string import Formatter
from typing import Any

import requests
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from members.models import Identity, mask_mobile
from orders.models import Channel, Payment
from retail.models import OutboxDelivery, OutboxEvent
from retail.money import fen_to_yuan
from retail.outbox import Outcome, done, give_up, retry, subscribe
from wechat import client
from wechat.client import MiniProgramClient, WeChatError
from wechat.models import SyncCall

logger = logging.getLogger(__name__)

SHIPPING = "wechat_shipping"
MESSAGES = "wechat_messages"
# The name WeChat Pay registers under as a payment provider (wechat.pay).
WECHAT_PAY = "wechat_pay"
# Orders a shopper placed in WeChat; counter and partner orders are not paid in the mini-program.
SHOPPER_CHANNELS = frozenset({Channel.MINI_SHOP, Channel.H5})

SHIPPING_EVENTS = frozenset({"order.partially_shipped", "order.shipped", "order.ready_for_pickup"})
MESSAGE_FOR_EVENT = {
    "order.paid": "paid",
    "order.shipped": "shipped",
    "order.ready_for_pickup": "pickup_ready",
    "refund.succeeded": "refunded",
}
UPLOAD_PATH = "wxa/sec/order/upload_shipping_info"
MESSAGE_PATH = "cgi-bin/message/subscribe/send"

COURIER, SAME_CITY, PICKUP = 1, 2, 4  # logistics_type
UNIFIED, SPLIT = 1, 2  # delivery_mode
MAX_PARCELS = 15
ITEM_DESC_MAX = 120
# What WeChat accepts in a keyword value, by the keyword's type (its name without the number).
VALUE_MAX = {"thing": 20, "character_string": 32, "number": 32, "letter": 32, "phrase": 5}
MESSAGE_FIELDS = frozenset(
    {"number", "amount", "items", "store", "time", "carrier", "tracking_number"}
)
# WeChat's names of its delivery ids (get_delivery_list), for the shipped message.
DELIVERY_NAMES = {
    "SF": "顺丰速运",
    "ZTO": "中通快递",
    "YTO": "圆通速递",
    "STO": "申通快递",
    "YD": "韵达快递",
    "JTSD": "极兔速递",
    "EMS": "EMS",
    "JD": "京东物流",
}
SAME_CITY_NAME = "同城配送"
UNANSWERED = (
    "WeChat may have sent this message already, so it is not sent again automatically "
    "(a shopper must not get it twice); retry the delivery to send it anyway"
)

State = SyncCall.State


def sync_subscribe() -> None:
    """Register both subscribers with the outbox (from ``WeChatConfig.ready``)."""
    subscribe(
        SHIPPING, event_types=SHIPPING_EVENTS, handler=shipping_deliver, accepts=_shopper_order
    )
    subscribe(
        MESSAGES,
        event_types=MESSAGE_FOR_EVENT.keys(),
        handler=message_deliver,
        accepts=_message_wanted,
    )


def _shopper_order(event: OutboxEvent) -> bool:
    return (event.payload.get("order") or {}).get("channel") in SHOPPER_CHANNELS


def _message_wanted(event: OutboxEvent) -> bool:
    return (
        _shopper_order(event)
        and event.payload["order"].get("member_id") is not None
        and MESSAGE_FOR_EVENT[event.event_type] in settings.WECHAT_SUBSCRIBE_TEMPLATES
    )


class Unsendable(Exception):
    """What would be told breaks WeChat's rules or misses configuration: given up, the
    delivery's error says why (staff fix it, then retry)."""


# --- shipping info ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    logistics_type: int
    delivery_mode: int
    shipping_list: list[dict[str, Any]]
    is_all_delivered: bool | None = None


def shipping_plan(event: OutboxEvent) -> Upload | None:
    """What this event tells WeChat's shipping service; None: nothing (yet). Raises
    ``Unsendable`` when WeChat could not take it."""
    order = event.payload["order"]
    if event.event_type == "order.ready_for_pickup":
        return Upload(PICKUP, UNIFIED, [{"item_desc": _item_desc(order["lines"])}])
    parcels = order["shipments"]
    data = event.payload["event"]["data"]
    named = (data.get("carrier_code"), data.get("tracking_number"))
    index = next(
        (i for i, p in enumerate(parcels) if (p["carrier_code"], p["tracking_number"]) == named),
        None,
    )
    if index is None:
        raise Unsendable(f"The order has no parcel {named[0]} {named[1]}.")
    parcel, last = parcels[index], event.event_type == "order.shipped"
    if last and all(_same_city(p) for p in parcels):
        return Upload(SAME_CITY, UNIFIED, [{"item_desc": _item_desc(order["lines"])}])
    if last and len(parcels) == 1:
        return Upload(COURIER, UNIFIED, [_courier_parcel(parcel, order)])
    if _same_city(parcel):
        if not last:
            # WeChat's split delivery is for couriers only; the order's last parcel ends it.
            return None
        raise Unsendable(
            "The last parcel went with a same-city rider, which cannot end a split courier "
            "upload at WeChat: upload it in the WeChat merchant platform."
        )
    uploaded_before = sum(1 for p in parcels[:index] if not _same_city(p))
    if not last and uploaded_before >= MAX_PARCELS - 1:
        # WeChat takes 15 parcels per payment: the 15th place is kept for the last one.
        return None
    return Upload(COURIER, SPLIT, [_courier_parcel(parcel, order)], is_all_delivered=last)


def _same_city(parcel: dict[str, Any]) -> bool:
    riders = {code.upper() for code in settings.WECHAT_SAME_CITY_CARRIERS}
    return parcel["carrier_code"].upper() in riders


def _courier_parcel(parcel: dict[str, Any], order: dict[str, Any]) -> dict[str, Any]:
    code = parcel["carrier_code"].upper()
    delivery_id = settings.WECHAT_DELIVERY_IDS.get(code)
    if delivery_id is None:
        raise Unsendable(
            f"Carrier {code} has no WeChat delivery id: add it to WECHAT_DELIVERY_IDS."
        )
    keys = set(parcel["line_keys"])
    entry = {
        "tracking_no": parcel["tracking_number"],
        "express_company": delivery_id,
        "item_desc": _item_desc(line for line in order["lines"] if line["line_key"] in keys),
    }
    mobile = (order.get("address") or {}).get("mobile")
    if mobile:
        # The receiver's number, masked but for its last four digits (SF requires it).
        entry["contact"] = {"receiver_contact": mask_mobile(mobile)}
    return entry


def _item_desc(lines: Iterable[dict[str, Any]]) -> str:
    text = "、".join(f"{line['product_name']}×{line['quantity']}" for line in lines)
    return text if len(text) <= ITEM_DESC_MAX else text[: ITEM_DESC_MAX - 1] + "…"


def shipping_deliver(event: OutboxEvent) -> Outcome:
    """The ``wechat_shipping`` handler."""
    order = event.payload["order"]
    transaction_id = (
        Payment.objects.filter(
            order_id=order["id"], provider=WECHAT_PAY, status=Payment.Status.SUCCEEDED
        )
        .values_list("transaction_id", flat=True)
        .first()
    )
    if not transaction_id:
        logger.info("order %s was not paid with WeChat Pay: no shipping upload", order["number"])
        return done()
    try:
        upload = shipping_plan(event)
    except Unsendable as error:
        return give_up(str(error))
    if upload is None:
        logger.info("order %s: %s is not uploaded on its own", order["number"], event.event_type)
        return done()
    openid = _openid(order["member_id"])
    if openid is None:
        return give_up(f"The payer has no WeChat identity for app {settings.WECHAT_APP_ID}.")
    request = {
        "transaction_id": transaction_id,
        "payer_openid": openid,
        "upload_time": timezone.localtime(event.created_at).isoformat(timespec="milliseconds"),
        **asdict(upload),
    }

    def send(wechat: MiniProgramClient) -> dict[str, Any]:
        return wechat.upload_shipping_info(
            payer_openid=openid,
            transaction_id=transaction_id,
            shipping_list=upload.shipping_list,
            logistics_type=upload.logistics_type,
            delivery_mode=upload.delivery_mode,
            is_all_delivered=upload.is_all_delivered,
            upload_time=event.created_at,
        )

    return _once(
        event,
        kind=SyncCall.Kind.SHIPPING,
        order_number=order["number"],
        request=request,
        send=send,
        path=UPLOAD_PATH,
        resend_unanswered=True,
    )


# --- subscribe messages ---------------------------------------------------------------------


def message_fields(event: OutboxEvent) -> dict[str, str]:
    """The values a template's keywords are written with."""
    order, data = event.payload["order"], event.payload["event"]["data"]
    refund = event.event_type == "refund.succeeded"
    carrier_code = str(data.get("carrier_code", "")).upper()
    if carrier_code and _same_city({"carrier_code": carrier_code}):
        carrier = SAME_CITY_NAME
    else:
        delivery_id = settings.WECHAT_DELIVERY_IDS.get(carrier_code, carrier_code)
        carrier = DELIVERY_NAMES.get(delivery_id, delivery_id)
    lines = order["lines"]
    first = lines[0]
    items = f"{first['product_name']}×{first['quantity']}"
    if len(lines) > 1:
        items = f"{first['product_name']}等{sum(line['quantity'] for line in lines)}件"
    return {
        "number": order["number"],
        "amount": fen_to_yuan(data["amount_fen"] if refund else order["paid_fen"]),
        "items": items,
        "store": order["store"]["name"],
        "time": f"{timezone.localtime(event.created_at):%Y-%m-%d %H:%M}",
        "carrier": carrier,
        "tracking_number": str(data.get("tracking_number", "")),
    }


def _written(name: str, pattern: str, fields: dict[str, str]) -> str:
    for _text, field, _spec, _conversion in Formatter().parse(pattern):
        if field is not None and field not in MESSAGE_FIELDS:
            raise Unsendable(
                f"WECHAT_SUBSCRIBE_TEMPLATES[{name!r}] uses {{{field}}}; the fields are "
                f"{', '.join(sorted(MESSAGE_FIELDS))}."
            )
    try:
        return pattern.format_map(fields)
    except (ValueError, IndexError) as error:
        raise Unsendable(f"WECHAT_SUBSCRIBE_TEMPLATES[{name!r}]: {error}") from error


def _fitted(keyword: str, value: str) -> str:
    """Cut to what WeChat accepts for the keyword's type; a ``thing`` shows it was cut."""
    limit = VALUE_MAX.get(keyword.rstrip("0123456789"))
    if limit is None or len(value) <= limit:
        return value
    if keyword.startswith("thing"):
        return value[: limit - 1] + "…"
    return value[:limit]


def message_deliver(event: OutboxEvent) -> Outcome:
    """The ``wechat_messages`` handler."""
    order = event.payload["order"]
    name = MESSAGE_FOR_EVENT[event.event_type]
    template = settings.WECHAT_SUBSCRIBE_TEMPLATES.get(name)
    if template is None:
        return done()  # taken out of the configuration since the event
    openid = _openid(order["member_id"])
    if openid is None:
        logger.info("order %s: the member has no WeChat identity to message", order["number"])
        return done()
    fields = message_fields(event)
    try:
        data = {
            keyword: _fitted(keyword, _written(name, pattern, fields))
            for keyword, pattern in template["data"].items()
        }
        page = _written(name, template.get("page", ""), fields)
    except Unsendable as error:
        return give_up(str(error))
    template_id = template["template_id"]
    request = {"touser": openid, "template_id": template_id, "page": page, "data": data}
    return _once(
        event,
        kind=SyncCall.Kind.MESSAGE,
        order_number=order["number"],
        request=request,
        send=lambda wechat: wechat.send_subscribe_message(
            openid=openid, template_id=template_id, data=data, page=page or None
        ),
        path=MESSAGE_PATH,
        resend_unanswered=False,
    )


# --- once per event -----------------------------------------------------------------------------


def _openid(member_id: int | None) -> str | None:
    if member_id is None:
        return None
    return (
        Identity.objects.filter(
            member_id=member_id, kind=Identity.Kind.WECHAT, app_id=settings.WECHAT_APP_ID
        )
        .order_by("-pk")
        .values_list("openid", flat=True)
        .first()
    )


def _unanswered(error: WeChatError, path: str) -> bool:
    """The call itself (not a token fetch before it) went out and no answer came: WeChat may
    have acted on it. The client raises a read timeout from the ``requests`` exception."""
    cause = error.__cause__
    return (
        isinstance(cause, requests.Timeout)
        and not isinstance(cause, requests.ConnectionError)
        and path in str(getattr(cause.request, "url", "") or "")
    )


def _retried_by_staff(event: OutboxEvent, *, since) -> bool:
    return OutboxDelivery.objects.filter(
        event_id=event.pk, subscriber=MESSAGES, retried_at__gt=since
    ).exists()


def _once(
    event: OutboxEvent,
    *,
    kind: str,
    order_number: str,
    request: dict[str, Any],
    send: Callable[[MiniProgramClient], dict[str, Any]],
    path: str,
    resend_unanswered: bool,
) -> Outcome:
    """Make the call for ``event`` unless WeChat already accepted it; record the outcome."""
    wechat = client.get_client()
    now = timezone.now()
    record, created = SyncCall.objects.get_or_create(
        event_id=event.event_id,
        kind=kind,
        defaults={
            "order_number": order_number,
            "state": State.SENDING,
            "calls": 1,
            "request": request,
            "updated_at": now,
        },
    )
    if not created:
        if record.state == State.SENT:
            return done()
        if (
            record.state == State.SENDING
            and not resend_unanswered
            and not _retried_by_staff(event, since=record.updated_at)
        ):
            return give_up(f"An earlier call got no answer. {UNANSWERED}.")
        SyncCall.objects.filter(pk=record.pk).update(
            state=State.SENDING, calls=F("calls") + 1, request=request, updated_at=now
        )
    this = SyncCall.objects.filter(pk=record.pk)
    try:
        answer = send(wechat)
    except WeChatError as error:
        text = str(error)
        if _unanswered(error, path):
            this.update(errcode=None, error=text[:200], updated_at=timezone.now())
            return retry(text) if resend_unanswered else give_up(f"{text}. {UNANSWERED}.")
        this.update(
            state=State.FAILED if error.retryable else State.REFUSED,
            errcode=error.errcode,
            error=text[:200],
            updated_at=timezone.now(),
        )
        return retry(text) if error.retryable else give_up(text)
    this.update(
        state=State.SENT,
        # 10060023: WeChat already held exactly this (an earlier call it had acted on).
        errcode=client.SHIPPING_UNCHANGED if answer.get("already_uploaded") else None,
        error="",
        updated_at=timezone.now(),
    )
    return done()
