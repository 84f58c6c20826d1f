"""The urlconf the partner schema is generated from: the partner API alone, at its prefix."""

from django.urls import include, path

from partners.api.schema import PARTNER_PREFIX

urlpatterns = [path(PARTNER_PREFIX.lstrip("/"), include("partners.api.urls"))]
