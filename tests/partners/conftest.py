import pytest

from partners import services


@pytest.fixture(autouse=True)
def _partner_secret_key(settings):
    """Tests run with DEBUG off, as production does: the key partner secrets are encrypted
    under is derived from SECRET_KEY here, as DEBUG would."""
    settings.PARTNER_SECRET_KEY = settings.SECRET_KEY


@pytest.fixture
def courier(db, store_a):
    partner, _secret = services.partner_create(
        name="顺丰同城",
        kind="fulfilment",
        webhook_url="https://partner.example/hooks",
        stores=[store_a],
        cities=["上海市"],
    )
    return partner


@pytest.fixture
def channel(db):
    partner, _secret = services.partner_create(name="美团闪购", kind="sales_channel")
    return partner
