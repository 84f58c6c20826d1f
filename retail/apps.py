from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RetailConfig(AppConfig):
    name = "retail"
    verbose_name = _("Stores and catalogue")
