from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from retail.views import alive, health

handler400 = "retail.errors.bad_request"
handler403 = "retail.errors.permission_denied"
handler404 = "retail.errors.page_not_found"
handler500 = "retail.errors.server_error"

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("health/", health, name="health"),
    path("health/live", alive, name="alive"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/staff/v1/", include("retail.api.urls")),
    path("api/staff/v1/orders/", include("orders.api.urls")),
    path("api/staff/v1/orders/", include("wechat.api.staff_pay")),
    path("api/shop/v1/", include("wechat.api.urls")),
    path("api/partner/v1/", include("partners.api.urls")),
    path("shop/", include("wechat.h5.urls")),
    path("console/", include("retail.console.urls")),
    path("wechat/pay/", include("wechat.pay.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]
