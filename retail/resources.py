"""Spreadsheet import and export of the catalogue (django-import-export).

Rows are matched on ``code``: a row with a known code updates it, a new code creates it. Every
row is validated like a form; one bad row rejects the whole file and nothing is written.
"""

import json

from django.utils.translation import gettext as _
from import_export import fields, resources, widgets

from retail.models import SKU, Category, Product
from retail.money import fen_to_yuan, yuan_to_fen


class YuanWidget(widgets.Widget):
    """A price column in yuan ("12.50") for people, stored as integer fen."""

    def clean(self, value, row=None, **kwargs):
        if value in (None, ""):
            raise ValueError(_("A price is required."))
        try:
            return yuan_to_fen(value)
        except ValueError as error:
            raise ValueError(_("%(value)s is not a price in yuan.") % {"value": value}) from error

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else fen_to_yuan(value)


class StrictForeignKeyWidget(widgets.ForeignKeyWidget):
    """A foreign key by code, with an error that names the missing code."""

    def clean(self, value, row=None, **kwargs):
        if value in (None, ""):
            raise ValueError(_("This column is required."))
        try:
            return super().clean(value, row, **kwargs)
        except self.model.DoesNotExist as error:
            raise ValueError(
                _("No %(model)s with code %(code)s.")
                % {"model": self.model._meta.verbose_name, "code": value}
            ) from error


class AttributesWidget(widgets.JSONWidget):
    """Spec attributes as a JSON object; an empty cell means none."""

    def clean(self, value, row=None, **kwargs):
        attributes = super().clean(value, row, **kwargs) or {}
        if not isinstance(attributes, dict):
            raise ValueError(_('Write spec attributes as a JSON object, e.g. {"规格": "500ml"}.'))
        return attributes

    def render(self, value, obj=None, **kwargs):
        return json.dumps(value, ensure_ascii=False) if value else ""


class CatalogueResource(resources.ModelResource):
    class Meta:
        abstract = True
        import_id_fields = ("code",)
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True
        use_transactions = True

    def import_data(self, dataset, **kwargs):
        # A row that fails model validation rolls the whole file back too, not only a row that
        # raises: a catalogue is never left half-imported, whoever calls this.
        kwargs["rollback_on_validation_errors"] = True
        return super().import_data(dataset, **kwargs)


class ProductResource(CatalogueResource):
    category = fields.Field(
        attribute="category",
        column_name="category",
        widget=StrictForeignKeyWidget(Category, field="code"),
    )

    class Meta(CatalogueResource.Meta):
        model = Product
        fields = ("code", "name", "category", "brand", "unit", "description", "active")
        export_order = fields


class SKUResource(CatalogueResource):
    product = fields.Field(
        attribute="product",
        column_name="product",
        widget=StrictForeignKeyWidget(Product, field="code"),
    )
    product_name = fields.Field(
        attribute="product__name", column_name="product_name", readonly=True
    )
    price_yuan = fields.Field(attribute="price_fen", column_name="price_yuan", widget=YuanWidget())
    attributes = fields.Field(
        attribute="attributes", column_name="attributes", widget=AttributesWidget()
    )

    class Meta(CatalogueResource.Meta):
        model = SKU
        fields = (
            "code",
            "product",
            "product_name",
            "barcode",
            "attributes",
            "price_yuan",
            "active",
        )
        export_order = fields

    def get_queryset(self):
        return SKU.objects.select_related("product")
