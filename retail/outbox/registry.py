"""Who listens to the outbox, and what a handler answers.

Apps register from their ``ready()``; the core never imports them. A handler gets the
``OutboxEvent`` (its ``event_id`` is stable across repeats) and answers with an ``Outcome``.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from django.core.exceptions import ImproperlyConfigured

from retail.models import OutboxEvent


class Verdict(StrEnum):
    DONE = "done"
    RETRY = "retry"
    GIVE_UP = "give_up"


@dataclass(frozen=True)
class Outcome:
    """What a handler says about one attempt. Build it with ``done``, ``retry`` or ``give_up``."""

    verdict: Verdict
    error: str = ""
    status_code: int | None = None


def done(status_code: int | None = None) -> Outcome:
    """The receiver has the event (a repeat it recognised counts as done)."""
    return Outcome(Verdict.DONE, status_code=status_code)


def retry(error: str, status_code: int | None = None) -> Outcome:
    """Try again later: network error, timeout, 5xx, the receiver is busy."""
    return Outcome(Verdict.RETRY, str(error), status_code)


def give_up(error: str, status_code: int | None = None) -> Outcome:
    """It will never succeed (a 4xx the receiver means): dead now, staff may retry."""
    return Outcome(Verdict.GIVE_UP, str(error), status_code)


Handler = Callable[[OutboxEvent], Outcome]
Filter = Callable[[OutboxEvent], bool]


@dataclass(frozen=True)
class Subscriber:
    name: str
    event_types: frozenset[str]
    handler: Handler
    accepts: Filter | None = None

    def wants(self, event: OutboxEvent) -> bool:
        if event.event_type not in self.event_types:
            return False
        return self.accepts is None or bool(self.accepts(event))


_subscribers: dict[str, Subscriber] = {}

NAME_MAX_LENGTH = 64


def subscribe(
    name: str,
    *,
    event_types: Iterable[str],
    handler: Handler,
    accepts: Filter | None = None,
) -> Subscriber:
    """Register ``handler`` for ``event_types`` under ``name``, which deliveries keep.

    ``accepts(event)``, when given, narrows further (a partner only gets its own orders). It
    runs inside the publisher's transaction: keep it a pure function of the event.
    """
    if not name or len(name) > NAME_MAX_LENGTH:
        raise ImproperlyConfigured(f"An outbox subscriber's name has 1 to 64 characters: {name!r}")
    if isinstance(event_types, str) or not event_types:
        raise ImproperlyConfigured(f"Outbox subscriber {name!r} needs a collection of event types.")
    subscriber = Subscriber(name, frozenset(event_types), handler, accepts)
    registered = _subscribers.get(name)
    if registered is not None and registered != subscriber:
        raise ImproperlyConfigured(f"Another outbox subscriber is registered as {name!r}.")
    _subscribers[name] = subscriber
    return subscriber


def subscribers_for(event: OutboxEvent) -> list[Subscriber]:
    """The subscribers that want ``event``, in name order (so deliveries are created in a
    stable order)."""
    return [_subscribers[name] for name in sorted(_subscribers) if _subscribers[name].wants(event)]


def subscriber_named(name: str) -> Subscriber | None:
    return _subscribers.get(name)
