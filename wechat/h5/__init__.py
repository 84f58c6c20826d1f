"""The H5 shop under ``/shop/``: server-rendered mobile pages for the shopper's journey (login
through the WeChat sandbox, store picker, catalogue, product, cart, checkout, orders, member
code), on the same services and selectors as the shopper API."""
