"""`make demo` runs the sandbox beside the platform, the two configured against each other."""

import re
from pathlib import Path

from wechat.sandbox import SANDBOX_APP_ID, SANDBOX_APP_SECRET
from wechat.sandbox.pay_v3 import platform_settings

ROOT = Path(__file__).resolve().parents[2]
PROCFILE = ROOT / "Procfile.demo"
SANDBOX_ENV = ROOT / "demo" / "wechat-sandbox.env"


def processes() -> dict[str, str]:
    lines = PROCFILE.read_text(encoding="utf-8").splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def sandbox_environment() -> dict[str, str]:
    return dict(re.findall(r"^export (WECHAT_\w+)=(\S+)$", SANDBOX_ENV.read_text(), re.MULTILINE))


def test_the_demo_runs_the_sandbox_on_its_port():
    assert processes()["wechat"] == "python -m wechat.sandbox --port ${WECHAT_SANDBOX_PORT:-8766}"


def test_web_and_worker_take_the_sandbox_settings():
    for name in ("web", "worker"):
        assert processes()[name].startswith(". ./demo/wechat-sandbox.env && ")


def test_the_demo_plays_against_the_sandbox_as_its_mini_program_and_pay_merchant():
    pay = platform_settings("http://127.0.0.1:${WECHAT_SANDBOX_PORT:-8766}")
    for setting in ("WECHAT_PAY_V3_PRIVATE_KEY_PATH", "WECHAT_PAY_V3_PUBLIC_KEY_PATH"):
        pay[setting] = str(Path(pay[setting]).relative_to(ROOT))

    assert sandbox_environment() == {
        "WECHAT_APP_ID": SANDBOX_APP_ID,
        "WECHAT_APP_SECRET": SANDBOX_APP_SECRET,
        "WECHAT_API_BASE_URL": "http://127.0.0.1:${WECHAT_SANDBOX_PORT:-8766}/",
        "WECHAT_PAY_VERSION": "v3",
        "WECHAT_PAY_NOTIFY_BASE_URL": "http://127.0.0.1:${DEMO_PORT:-8000}",
        **pay,
    }
