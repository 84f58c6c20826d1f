from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from wechat.api import auth, catalogue
from wechat.api.schema import SHOP_SCHEMA_SETTINGS

app_name = "shop-api"

urlpatterns = [
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("me/phone/", auth.BindPhoneView.as_view(), name="bind-phone"),
    path("home/", catalogue.HomeView.as_view(), name="home"),
    path("categories/", catalogue.CategoryListView.as_view(), name="category-list"),
    path("products/", catalogue.ProductListView.as_view(), name="product-list"),
    path("products/<int:pk>/", catalogue.ProductDetailView.as_view(), name="product-detail"),
    path("recommendations/", catalogue.RecommendationsView.as_view(), name="recommendations"),
    path("", include("wechat.api.urls_account")),
    path("", include("wechat.api.urls_pay")),
    path(
        "schema/",
        SpectacularAPIView.as_view(
            urlconf="wechat.api.schema_urls", custom_settings=SHOP_SCHEMA_SETTINGS
        ),
        name="schema",
    ),
    path("docs/", SpectacularSwaggerView.as_view(url_name="shop-api:schema"), name="docs"),
]
