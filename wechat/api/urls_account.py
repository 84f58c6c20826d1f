"""The logged-in shopper's endpoints (wechat/api/account.py), under /api/shop/v1/."""

from django.urls import path

from wechat.api import account

urlpatterns = [
    path("cart/", account.CartView.as_view(), name="cart"),
    path("cart/store/", account.CartStoreView.as_view(), name="cart-store"),
    path("cart/lines/<int:sku>/", account.CartLineView.as_view(), name="cart-line"),
    path("checkout/preview/", account.CheckoutPreviewView.as_view(), name="checkout-preview"),
    path("checkout/", account.CheckoutView.as_view(), name="checkout"),
    path("orders/", account.OrderListView.as_view(), name="orders"),
    path("orders/<str:number>/", account.OrderDetailView.as_view(), name="order"),
    path("orders/<str:number>/cancel/", account.OrderCancelView.as_view(), name="order-cancel"),
    path(
        "orders/<str:number>/confirm-receipt/",
        account.OrderConfirmReceiptView.as_view(),
        name="order-confirm-receipt",
    ),
    path(
        "orders/<str:number>/after-sales/",
        account.OrderAfterSaleView.as_view(),
        name="order-after-sale",
    ),
    path("orders/<str:number>/review/", account.OrderReviewView.as_view(), name="order-review"),
    path("me/", account.MeView.as_view(), name="me"),
    path("me/points/", account.PointsHistoryView.as_view(), name="points"),
    path("me/coupons/", account.CouponListView.as_view(), name="coupons"),
    path("me/member-code/", account.MemberCodeView.as_view(), name="member-code"),
    path("me/share/", account.ShareView.as_view(), name="share"),
    path("me/referrer/", account.ReferrerView.as_view(), name="referrer"),
    path("coupons/claimable/", account.ClaimableCouponsView.as_view(), name="coupons-claimable"),
    path("coupons/<int:template>/claim/", account.CouponClaimView.as_view(), name="coupon-claim"),
    path("addresses/", account.AddressListView.as_view(), name="addresses"),
    path("addresses/<int:pk>/", account.AddressDetailView.as_view(), name="address"),
]
