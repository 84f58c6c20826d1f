from rest_framework import serializers

from retail.models import SKU, Product, Store


class StoreOutput(serializers.ModelSerializer):
    latitude = serializers.FloatField()
    longitude = serializers.FloatField()

    class Meta:
        model = Store
        fields = [
            "id",
            "code",
            "name",
            "kind",
            "province",
            "city",
            "district",
            "address",
            "phone",
            "latitude",
            "longitude",
            "opens_at",
            "closes_at",
            "offers_pickup",
            "offers_ship_from_store",
            "offers_counter_sales",
            "delivery_radius_m",
            "active",
        ]


class SKUOutput(serializers.ModelSerializer):
    product_code = serializers.CharField(source="product.code")
    product_name = serializers.CharField(source="product.name")
    category = serializers.CharField(source="product.category.code")

    class Meta:
        model = SKU
        fields = [
            "id",
            "code",
            "barcode",
            "product_code",
            "product_name",
            "category",
            "attributes",
            "price_fen",
            "active",
        ]


class SKUCreateInput(serializers.Serializer):
    product = serializers.SlugRelatedField(slug_field="code", queryset=Product.objects.all())
    code = serializers.CharField(max_length=32)
    barcode = serializers.CharField(max_length=14)
    price_fen = serializers.IntegerField(min_value=0)
    attributes = serializers.DictField(child=serializers.CharField(max_length=50), required=False)
    active = serializers.BooleanField(default=True)
