"""The outbox: the one road from the core to the outside world.

A service that changes something the outside world must hear about calls ``outbox_publish``
inside its own ``transaction.atomic()``: the event and one delivery per interested subscriber
commit with the change, or not at all. After commit a Celery task attempts each delivery;
a beat sweeper re-sends whatever is due and nobody holds, so a lost message or a killed worker
only delays a delivery. Subscribers (``wechat``, ``partners``) register with ``subscribe`` from
their app's ``ready()``; the core never imports them.

    subscribe("wechat", event_types={"paid", "shipped"}, handler=sync_order_to_wechat)

    def sync_order_to_wechat(event: OutboxEvent) -> Outcome:
        ...  # call out, with event.event_id so that a repeat is recognised
        return done()  # or retry("timeout"), give_up("invalid openid", 400)

See docs/architecture.md, "Outbox", for states, ordering and guarantees.
"""

from retail.outbox.delivery import Result, outbox_delivery_attempt, outbox_retry_delay, outbox_sweep
from retail.outbox.registry import Outcome, Subscriber, Verdict, done, give_up, retry, subscribe
from retail.outbox.services import outbox_attempts_trim, outbox_delivery_retry, outbox_publish

__all__ = [
    "Outcome",
    "Result",
    "Subscriber",
    "Verdict",
    "done",
    "give_up",
    "outbox_attempts_trim",
    "outbox_delivery_attempt",
    "outbox_delivery_retry",
    "outbox_publish",
    "outbox_retry_delay",
    "outbox_sweep",
    "retry",
    "subscribe",
]
