"""The H5 shop's forms: they check the shape of what the shopper typed; the services decide
whether it may be done."""

import uuid

from django import forms
from django.utils.translation import gettext_lazy as _

from orders.models import Fulfilment
from wechat.models import Address


class StoreChoiceForm(forms.Form):
    store = forms.IntegerField(min_value=1)


class CatalogueForm(forms.Form):
    category = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    q = forms.CharField(max_length=50, required=False)
    in_stock = forms.BooleanField(required=False)

    def __init__(self, *args, categories=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.categories = {category.pk: category for category in categories}
        self.fields["category"].choices = [("", "")] + [
            (category.pk, category.name) for category in categories
        ]

    def clean_category(self):
        chosen = self.cleaned_data["category"]
        return None if chosen is None else self.categories[chosen]


class CartLineForm(forms.Form):
    """How many of a SKU the cart should hold; 0 removes it."""

    sku = forms.IntegerField(min_value=1)
    quantity = forms.IntegerField(min_value=0)


class CheckoutForm(forms.Form):
    PREVIEW = "preview"
    PLACE = "place"

    fulfilment = forms.ChoiceField(
        label=_("How you get it"),
        choices=[
            (Fulfilment.PICKUP, _("Pick up at the store")),
            (Fulfilment.DELIVERY, _("Deliver to my address")),
        ],
        widget=forms.RadioSelect,
        initial=Fulfilment.PICKUP,
    )
    address = forms.TypedChoiceField(
        label=_("Delivery address"), coerce=int, required=False, empty_value=None
    )
    coupon_code = forms.CharField(label=_("Coupon"), max_length=32, required=False)
    points = forms.IntegerField(label=_("Points to use"), min_value=0, required=False, initial=0)
    note = forms.CharField(label=_("Note for the store"), max_length=200, required=False)
    # Made once per page load: the same order answers a second click or a resent form.
    client_reference = forms.CharField(max_length=64, widget=forms.HiddenInput)
    action = forms.ChoiceField(choices=[(PREVIEW, PREVIEW), (PLACE, PLACE)], required=False)

    def __init__(self, *args, addresses=(), coupons=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["address"].choices = [("", _("Choose an address"))] + [
            (address.pk, f"{address.name} {address.mobile} {address.district}{address.detail}")
            for address in addresses
        ]
        self.fields["coupon_code"].widget = forms.Select(
            choices=[("", _("No coupon"))]
            + [(coupon.code, coupon.template.name) for coupon in coupons]
        )

    @staticmethod
    def new_reference() -> str:
        return f"h5-{uuid.uuid4().hex}"


class AddressForm(forms.ModelForm):
    class Meta:
        model = Address
        fields = ["name", "mobile", "province", "city", "district", "detail"]
        widgets = {"mobile": forms.TextInput(attrs={"type": "tel", "inputmode": "numeric"})}
