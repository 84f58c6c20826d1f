"""WeChat Pay's notifies, one endpoint per protocol version and kind, under
``/wechat/pay/notify/`` (``wechat.pay.base.notify_url``).

The gateway of the URL's version verifies and decrypts (``parse_notify``); anything it rejects
(a bad signature, a stale timestamp, an undecryptable body, another merchant) changes nothing,
is logged and answered as a failure. A verified notify is settled by the services (app id,
merchant id and amount checked against the payment, then ``payment_confirm``, which is
idempotent): WeChat hears "success" whether it confirmed, was a replay, or was refused and
recorded as a ``PaymentIssue`` (asking again would not change the answer). Only an error of our
own (the database down) answers a failure, so that WeChat sends it again later.
"""

import hashlib
import logging

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from wechat.pay.base import NotifyAnswer, NotifyRejected, gateway
from wechat.pay.services import notice_settle

logger = logging.getLogger("wechat.pay")


def _answer(answer: NotifyAnswer) -> HttpResponse:
    return HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)


@csrf_exempt
@require_POST
def notify(request: HttpRequest, version: str, kind: str) -> HttpResponse:
    pay = gateway(version)
    digest = hashlib.sha256(request.body).hexdigest()[:16]
    try:
        # The headers as Django holds them: looked up by any spelling of their names.
        notice = pay.parse_notify(body=request.body, headers=request.headers)
    except NotifyRejected as rejected:
        logger.warning(
            "%s %s notify rejected: %s %s (from %s, body %s)",
            version,
            kind,
            rejected.reason,
            rejected.detail,
            request.META.get("REMOTE_ADDR", ""),
            digest,
        )
        return _answer(pay.notify_failure(rejected.reason))
    try:
        outcome = notice_settle(notice)
    except Exception:
        logger.exception(
            "%s %s notify %s not settled (body %s)", version, kind, notice.notify_id, digest
        )
        return _answer(pay.notify_failure("not processed, send it again"))
    logger.info("%s %s notify %s: %s (body %s)", version, kind, notice.notify_id, outcome, digest)
    return _answer(pay.notify_success())
