"""WeChat Pay's notifies, mounted under ``/wechat/pay/`` (see ``wechat.pay.base.notify_url``)."""

from django.urls import path

from wechat.pay import views

app_name = "wechat-pay"

urlpatterns = [
    path(f"notify/{version}/{suffix}", views.notify, {"version": version, "kind": kind}, name=name)
    for version in ("v3", "v2")
    for suffix, kind, name in (
        ("", "payment", f"notify-{version}"),
        ("refund/", "refund", f"refund-notify-{version}"),
    )
]
