"""Staff API for stores and the catalogue. Each view validates, calls one service or selector,
and serializes."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from retail import selectors, services
from retail.api.filters import SKUFilter
from retail.api.permissions import ModelPermissions
from retail.api.serializers import SKUCreateInput, SKUOutput, StoreOutput, error_responses

# Sessions only (no WWW-Authenticate to offer): not signed in is a 403, like a missing permission.
NOT_ALLOWED = "`not_authenticated` (not signed in) or `permission_denied` (the role may not)."
BAD_LIST_QUERY = "`validation_error` (a filter's value) or `invalid_cursor`."


@extend_schema_view(
    get=extend_schema(
        responses={
            200: StoreOutput(many=True),
            **error_responses({400: BAD_LIST_QUERY, 403: NOT_ALLOWED}),
        }
    )
)
class StoreListView(generics.ListAPIView):
    serializer_class = StoreOutput
    permission_classes = [ModelPermissions]

    def get_queryset(self):
        return selectors.store_list(user=self.request.user)


@extend_schema_view(
    get=extend_schema(
        responses={
            200: StoreOutput,
            **error_responses({403: NOT_ALLOWED, 404: "No such store among the user's."}),
        }
    )
)
class StoreDetailView(generics.RetrieveAPIView):
    """Another store's id is a 404: staff do not learn which stores exist beyond their own."""

    serializer_class = StoreOutput
    permission_classes = [ModelPermissions]

    def get_queryset(self):
        return selectors.store_list(user=self.request.user)


@extend_schema_view(
    get=extend_schema(
        responses={
            200: SKUOutput(many=True),
            **error_responses({400: BAD_LIST_QUERY, 403: NOT_ALLOWED}),
        }
    )
)
class SKUListView(generics.ListCreateAPIView):
    serializer_class = SKUOutput
    permission_classes = [ModelPermissions]
    filterset_class = SKUFilter

    def get_queryset(self):
        return selectors.sku_list()

    @extend_schema(
        request=SKUCreateInput,
        responses={
            201: SKUOutput,
            **error_responses(
                {
                    400: "`validation_error`: an input is invalid (`fields` says which).",
                    403: NOT_ALLOWED,
                    409: "`duplicate_sku`: the code or barcode is already in use.",
                    415: "`unsupported_media_type`: a body that is not JSON, a form or multipart.",
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        payload = SKUCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        sku = services.sku_create(**payload.validated_data)
        return Response(SKUOutput(sku).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(
        responses={200: SKUOutput, **error_responses({403: NOT_ALLOWED, 404: "No such SKU."})}
    )
)
class SKUDetailView(generics.RetrieveAPIView):
    serializer_class = SKUOutput
    permission_classes = [ModelPermissions]

    def get_queryset(self):
        return selectors.sku_list()
