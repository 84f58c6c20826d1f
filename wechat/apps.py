from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WeChatConfig(AppConfig):
    name = "wechat"
    verbose_name = _("WeChat")

    def ready(self) -> None:
        from members.services.identity import member_merge_participant_register
        from wechat.services.merge import (
            addresses_member_move,
            cart_member_move,
            tokens_member_move,
        )

        member_merge_participant_register("shop_tokens", tokens_member_move)
        member_merge_participant_register("addresses", addresses_member_move)
        member_merge_participant_register("cart", cart_member_move)

        from orders.payments import provider_register
        from wechat.pay.services import WeChatPayProvider

        provider_register(WeChatPayProvider())

        from wechat.sync import sync_subscribe

        sync_subscribe()
