"""The partner sandbox: a fulfilment partner played locally over HTTP, for the demo and the
tests. It receives our signed pushes on ``POST /pushes``, verifies them with the documented
scheme (``partners.signing``), records them (once per event id), and for an ``order.paid`` push
calls our partner API back after a delay with a shipment and later a delivery event. It shows
everything on ``/sandbox/`` and can be told to be down, slow or to answer 500.

Standalone: it imports nothing from Django or the platform. ``python -m partners.sandbox``
serves it; tests embed ``SandboxServer(Sandbox(secret=...), port=0).start()``.
"""

from partners.sandbox.core import Sandbox
from partners.sandbox.server import SandboxServer

__all__ = ["Sandbox", "SandboxServer"]
