"""The demo seeds' clock: write a believable past through the real services.

Rows are stamped with ``timezone.now()`` (``auto_now_add``, and the services' own ``paid_at``,
``sent_at`` ...) and the stock ledger refuses updates, so four weeks of history cannot be
written today and dated afterwards. The seed commands instead call the services with the clock
set to the moment each event happened. Only they use this; nothing else may.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from unittest import mock


@contextmanager
def demo_clock(moment: datetime) -> Iterator[None]:
    """Inside the block, ``django.utils.timezone.now()`` returns ``moment`` (aware)."""
    if moment.tzinfo is None:
        raise ValueError("demo_clock needs an aware datetime")
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield
