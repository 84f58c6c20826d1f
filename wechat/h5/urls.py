from django.urls import path

from wechat.h5 import views

app_name = "shop"

urlpatterns = [
    path("", views.index, name="index"),
    path("login/", views.login, name="login"),
    path("login/callback/", views.login_callback, name="login-callback"),
    path("logout/", views.logout, name="logout"),
    path("stores/", views.stores, name="stores"),
    path("catalogue/", views.catalogue, name="catalogue"),
    path("products/<int:product_id>/", views.product, name="product"),
    path("cart/", views.cart, name="cart"),
    path("checkout/", views.checkout, name="checkout"),
    path("addresses/new/", views.address_new, name="address-new"),
    path("orders/", views.orders, name="orders"),
    path("orders/<str:number>/", views.order, name="order"),
    path("me/", views.member_code, name="member"),
]
