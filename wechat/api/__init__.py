"""The shopper REST API under ``/api/shop/v1/``: what the mini-program and the H5 shop call.

Authentication is a bearer token issued at login (``auth.ShopperTokenAuthentication``);
``request.user`` is then a ``Shopper`` (``.member``, ``.token``).
"""
