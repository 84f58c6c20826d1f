"""`make demo` runs the sandbox beside the platform, the two configured against each other."""

import re
from pathlib import Path

from wechat.sandbox import SANDBOX_APP_ID, SANDBOX_APP_SECRET

PROCFILE = Path(__file__).resolve().parents[2] / "Procfile.demo"


def processes() -> dict[str, str]:
    lines = PROCFILE.read_text(encoding="utf-8").splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_the_demo_runs_the_sandbox_on_its_port():
    assert processes()["wechat"] == "python -m wechat.sandbox --port ${WECHAT_SANDBOX_PORT:-8766}"


def test_web_and_worker_talk_to_the_sandbox_as_its_mini_program():
    for name in ("web", "worker"):
        environment = dict(re.findall(r"(WECHAT_\w+)=(\S+)", processes()[name]))

        assert environment == {
            "WECHAT_APP_ID": SANDBOX_APP_ID,
            "WECHAT_APP_SECRET": SANDBOX_APP_SECRET,
            "WECHAT_API_BASE_URL": "http://127.0.0.1:${WECHAT_SANDBOX_PORT:-8766}/",
        }
