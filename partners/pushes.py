"""Pushes to partners: order events out to the partners that deal with the order, as one
outbox subscriber (``push_subscribe``, from ``partners.apps``; the core never imports this).

Who is told what:

- the partner an order is **routed to** (``PartnerOrder`` role ``fulfil``): ``order.paid``
  (made from the ``order.routed`` event written in the payment's transaction: "fulfil this"),
  then ``order.cancelled``, ``order.refunded`` and ``order.address_changed``;
- the partner that **sold** it (role ``sell``): ``order.paid``, ``order.shipped``,
  ``order.delivered``, ``order.completed``, ``order.cancelled`` and ``order.refunded``.

A push is ``POST <webhook_url>`` with a JSON body ``{"id", "type", "created_at", "data":
{"order": ...}}`` and the headers of ``partners.signing``, signed with the partner's secret
when sent (a retry carries the same event id and a fresh timestamp). 2xx: delivered. 408, 429,
5xx, a timeout or a network error: tried again by the outbox with backoff. Any other answer
(4xx, a redirect) will not change by asking again: recorded as failed with the answer and given
up; a staff retry of the delivery (outbox admin) sends it once more.

Never twice: a ``PartnerPush`` row per (event, partner) is written before each call and
updated with the answer, so a delivery that runs again (another partner of the order was down)
does not push again to a partner that took it. Receivers are still told to treat a repeated
event id as done: a worker lost mid-call sends again.
"""

import json
import logging
import time

import requests
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from partners import signing
from partners.models import Partner, PartnerOrder, PartnerPush
from partners.services import partner_push_secrets
from retail.models import OutboxDelivery, OutboxEvent
from retail.outbox import Outcome, Verdict, done, give_up, retry, subscribe

logger = logging.getLogger(__name__)

SUBSCRIBER = "partner_pushes"
ROUTED = "order.routed"
# Our event type -> the push type partners see.
FULFILLER_PUSHES = {
    ROUTED: "order.paid",
    "order.cancelled": "order.cancelled",
    "refund.succeeded": "order.refunded",
    "order.address_changed": "order.address_changed",
}
SELLER_PUSHES = {
    "order.paid": "order.paid",
    "order.shipped": "order.shipped",
    "order.delivered": "order.delivered",
    "order.completed": "order.completed",
    "order.cancelled": "order.cancelled",
    "refund.succeeded": "order.refunded",
}
PUSH_TYPES = sorted(set(FULFILLER_PUSHES.values()) | set(SELLER_PUSHES.values()))
RETRYABLE_STATUS = {408, 429}
ANSWER_CHARS = 500

Status = PartnerPush.Status


def push_subscribe() -> None:
    subscribe(
        SUBSCRIBER,
        event_types=set(FULFILLER_PUSHES) | set(SELLER_PUSHES),
        handler=push_deliver,
        accepts=_may_concern_partners,
    )


def _may_concern_partners(event: OutboxEvent) -> bool:
    """Only delivery orders are routed and only partner orders are sold by partners."""
    order = event.payload.get("order") or {}
    return order.get("channel") == "partner" or order.get("fulfilment") == "delivery"


def push_targets(event: OutboxEvent) -> list[tuple[Partner, str]]:
    """The partners to tell about ``event`` and the push type each gets."""
    order = event.payload["order"]
    links = list(PartnerOrder.objects.filter(order_id=order["id"]).select_related("partner"))
    seller_ids = {link.partner_id for link in links if link.role == PartnerOrder.Role.SELL}
    targets: dict[int, tuple[Partner, str]] = {}
    for link in links:
        if link.role == PartnerOrder.Role.SELL:
            push_type = SELLER_PUSHES.get(event.event_type)
        elif event.event_type == ROUTED:
            routed_to = event.payload["event"]["data"].get("partner_id")
            # A partner that sold the order hears of the payment as its seller already.
            wanted = routed_to == link.partner_id and link.partner_id not in seller_ids
            push_type = FULFILLER_PUSHES[ROUTED] if wanted else None
        else:
            # Routing happens with the payment: only what follows it is the fulfiller's news.
            paid = order.get("paid_at") is not None
            push_type = FULFILLER_PUSHES.get(event.event_type) if paid else None
        if push_type and link.partner_id not in targets:
            targets[link.partner_id] = (link.partner, push_type)
    return list(targets.values())


def push_body(event: OutboxEvent, push_type: str) -> bytes:
    """What a partner receives: the event's id and type and the order as it stood."""
    order = {
        key: value
        for key, value in event.payload["order"].items()
        if key not in {"id", "member_id"}
    }
    order["store"] = {key: value for key, value in order["store"].items() if key != "id"}
    data: dict = {"order": order}
    if push_type == "order.refunded":
        data["refund"] = {"amount_fen": event.payload["event"]["data"].get("amount_fen")}
    body = {
        "id": str(event.event_id),
        "type": push_type,
        "created_at": event.created_at.isoformat(),
        "data": data,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def push_deliver(event: OutboxEvent) -> Outcome:
    outcomes = [_push_once(event, partner, push_type) for partner, push_type in push_targets(event)]
    retrying = [outcome for outcome in outcomes if outcome.verdict == Verdict.RETRY]
    refused = [outcome for outcome in outcomes if outcome.verdict == Verdict.GIVE_UP]
    if retrying:
        return retrying[0]
    if refused:
        return refused[0]
    return done()


def _push_once(event: OutboxEvent, partner: Partner, push_type: str) -> Outcome:
    if not partner.active or not partner.webhook_url:
        # Nothing to send to: the partner reads its orders through the API.
        return done()
    push, _created = PartnerPush.objects.get_or_create(
        event_id=event.event_id,
        partner=partner,
        defaults={
            "event_type": push_type,
            "order_number": event.payload["order"]["number"],
            "status": Status.SENDING,
        },
    )
    if push.status == Status.DELIVERED:
        return done()
    if push.status == Status.FAILED and not _retried_by_staff(event, since=push.updated_at):
        return give_up(push.answer, push.status_code)
    # update() leaves auto_now alone: "last sent at" is written here, so that only a staff retry
    # after this call sends a refused push again.
    PartnerPush.objects.filter(pk=push.pk).update(
        status=Status.SENDING, attempts=F("attempts") + 1, updated_at=timezone.now()
    )
    body = push_body(event, push_type)
    secret, previous = partner_push_secrets(partner=partner)
    headers = signing.signed_headers(
        secret, push_type, str(event.event_id), int(time.time()), body, previous
    )
    headers["Content-Type"] = "application/json; charset=utf-8"
    try:
        answer = requests.post(
            partner.webhook_url,
            data=body,
            headers=headers,
            timeout=settings.PARTNER_PUSH_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except requests.RequestException as failure:
        error = f"{type(failure).__name__}: {failure}"
        _record(push, Status.RETRYING, None, error)
        return retry(error)
    text = answer.text[:ANSWER_CHARS]
    code = answer.status_code
    if 200 <= code < 300:
        _record(push, Status.DELIVERED, code, text)
        return done(code)
    error = f"HTTP {code}: {text}"
    if code >= 500 or code in RETRYABLE_STATUS:
        _record(push, Status.RETRYING, code, error)
        return retry(error, code)
    _record(push, Status.FAILED, code, error)
    logger.warning("partner %s refused push %s: %s", partner.pk, event.event_id, error)
    return give_up(error, code)


def _retried_by_staff(event: OutboxEvent, *, since) -> bool:
    """A push the partner refused is sent again only when staff retried its delivery."""
    return OutboxDelivery.objects.filter(
        event_id=event.pk, subscriber=SUBSCRIBER, retried_at__gt=since
    ).exists()


def _record(push: PartnerPush, status: str, status_code: int | None, answer: str) -> None:
    PartnerPush.objects.filter(pk=push.pk).update(
        status=status, status_code=status_code, answer=answer[:2000], updated_at=timezone.now()
    )
