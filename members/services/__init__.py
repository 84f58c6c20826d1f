"""Every write to members, points and coupons goes through here, by subdomain:

* ``identity``: sign-up, WeChat and phone identities, merging, member code, export and erasure;
* ``points``: the points ledger, spend and tiers, referrals;
* ``coupons``: coupon templates and coupons, promotions, and the stacking rule the pricing
  function applies.

``orders`` calls the ``member_order_*`` hooks as an order moves; ``members`` never imports
``orders``.
"""
