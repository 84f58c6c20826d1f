"""The WeChat sandbox: WeChat's mini-program platform played locally over HTTP, with WeChat's
paths, fields and error codes, for the demo and the tests (no real WeChat can be reached from
here). It records every call, shows them on ``/sandbox/``, and can be told to fail.

Standalone: it imports nothing from Django or the platform. ``python -m wechat.sandbox``
serves it; tests embed ``SandboxServer(port=0).start()``.
"""

from wechat.sandbox.core import Sandbox
from wechat.sandbox.data import SANDBOX_APP_ID, SANDBOX_APP_SECRET, WeChatUser
from wechat.sandbox.server import SandboxServer

__all__ = ["SANDBOX_APP_ID", "SANDBOX_APP_SECRET", "Sandbox", "SandboxServer", "WeChatUser"]
