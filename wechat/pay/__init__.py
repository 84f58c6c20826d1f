"""WeChat Pay: one gateway interface (``base``), two protocol versions behind it (``v3``, the
default, and ``v2``), and the services that use whichever the settings choose (``services``)."""
