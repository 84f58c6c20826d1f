"""Staff API for stores and the catalogue. Each view validates, calls one service or selector,
and serializes."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from retail import selectors, services
from retail.api.filters import SKUFilter
from retail.api.permissions import ModelPermissions
from retail.api.serializers import SKUCreateInput, SKUOutput, StoreOutput


class StoreListView(generics.ListAPIView):
    serializer_class = StoreOutput
    permission_classes = [ModelPermissions]

    def get_queryset(self):
        return selectors.store_list(user=self.request.user)


class StoreDetailView(generics.RetrieveAPIView):
    """Another store's id is a 404: staff do not learn which stores exist beyond their own."""

    serializer_class = StoreOutput
    permission_classes = [ModelPermissions]

    def get_queryset(self):
        return selectors.store_list(user=self.request.user)


class SKUListView(generics.ListCreateAPIView):
    serializer_class = SKUOutput
    permission_classes = [ModelPermissions]
    filterset_class = SKUFilter

    def get_queryset(self):
        return selectors.sku_list()

    @extend_schema(request=SKUCreateInput, responses={201: SKUOutput})
    def post(self, request: Request) -> Response:
        payload = SKUCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        sku = services.sku_create(**payload.validated_data)
        return Response(SKUOutput(sku).data, status=status.HTTP_201_CREATED)


class SKUDetailView(generics.RetrieveAPIView):
    serializer_class = SKUOutput
    permission_classes = [ModelPermissions]

    def get_queryset(self):
        return selectors.sku_list()
