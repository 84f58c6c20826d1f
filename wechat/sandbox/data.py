"""Who and what the sandbox knows out of the box: its mini-program, WeChat users, subscribe
message templates and carriers. ``python -m wechat.sandbox --users FILE`` replaces the users."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

# The mini-program the sandbox plays. Not secrets: they only open the sandbox.
SANDBOX_APP_ID = "wx5e1dbd0c2a9f4b71"
SANDBOX_APP_SECRET = "sandbox0secret0not0for0production"  # noqa: S105


@dataclass(frozen=True)
class WeChatUser:
    openid: str
    nickname: str
    # Only when the mini-program is bound to an open-platform account the user also used.
    unionid: str | None = None
    # The number WeChat holds for the user (the phone button shares it); None: no number bound.
    phone: str | None = None
    # WeChat's risk control refuses the user's login (jscode2session 40226).
    risky: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT_USERS = (
    WeChatUser(
        openid="oSbx5t1_LinXiaomei00000000001",
        nickname="林小美",
        unionid="uSbx_LinXiaomei0000000000001",
        phone="13800138001",
    ),
    WeChatUser(
        openid="oSbx5t1_WangDawei000000000002",
        nickname="王大伟",
        unionid="uSbx_WangDawei00000000000002",
        phone="13900139002",
    ),
    WeChatUser(
        openid="oSbx5t1_ChenJing0000000000003",
        nickname="陈静 (no unionid)",
        phone="13700137003",
    ),
    WeChatUser(
        openid="oSbx5t1_ZhaoLei0000000000004",
        nickname="赵磊 (no phone)",
        unionid="uSbx_ZhaoLei000000000000004",
    ),
    WeChatUser(
        openid="oSbx5t1_RiskyUser00000000005",
        nickname="风控用户 (risky: login refused)",
        phone="13600136005",
        risky=True,
    ),
)


def load_users(path: Path) -> tuple[WeChatUser, ...]:
    """Users from a JSON list of objects with the fields of ``WeChatUser``."""
    return tuple(WeChatUser(**entry) for entry in json.loads(path.read_text(encoding="utf-8")))


# Subscribe message templates of the sandbox's mini-program: id -> title and keywords. A
# keyword's type is its name without the number (thing, character_string, time, amount,
# phrase, phone_number, number); WeChat checks each value against its type.
DEFAULT_TEMPLATES = {
    "sandbox-order-paid": {
        "title": "订单支付成功通知",
        "keywords": ["character_string1", "amount2", "thing3", "time4"],
    },
    "sandbox-order-shipped": {
        "title": "订单发货通知",
        "keywords": ["character_string1", "thing2", "character_string3", "time4"],
    },
    "sandbox-pickup-ready": {
        "title": "取货提醒",
        "keywords": ["character_string1", "thing2", "phrase3", "time4"],
    },
    "sandbox-order-refunded": {
        "title": "退款成功通知",
        "keywords": ["character_string1", "amount2", "thing3", "time4"],
    },
}

# A slice of get_delivery_list: the carriers a Chinese retailer ships with.
DEFAULT_CARRIERS = (
    ("SF", "顺丰速运"),
    ("ZTO", "中通快递"),
    ("YTO", "圆通速递"),
    ("STO", "申通快递"),
    ("YD", "韵达快递"),
    ("JTSD", "极兔速递"),
    ("EMS", "EMS"),
    ("JD", "京东物流"),
)
