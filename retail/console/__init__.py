"""The store console: server-rendered pages for store staff (``/console/<store code>/...``).

The core gives the frame: who may open which store's pages (``console_view``), the navigation
that apps fill in (``console_nav_register``, from their ``ready()``) and the base template
``templates/console/base.html``. Each app serves its own pages from its ``console`` module
(``orders.console``, ``inventory.console``, ``wechat.console``) under the store's prefix, so
the dependency rule holds: the core imports none of them.
"""

from retail.console.access import ALL_STORES, console_view
from retail.console.nav import NavEntry, console_nav_register

__all__ = ["ALL_STORES", "NavEntry", "console_nav_register", "console_view"]
