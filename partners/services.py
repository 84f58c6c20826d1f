"""Writes on partners: creating them, their API keys and their signing secret.

Raw keys and secrets are returned once, to be shown once. Keys are kept as their SHA-256 (a
leaked table calls no API); the signing secret must be read back to sign pushes, so it is kept
encrypted with Fernet under a key derived from ``PARTNER_SECRET_KEY``.
"""

import base64
import hashlib
import secrets
from collections.abc import Iterable
from datetime import timedelta

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from partners.models import Partner, PartnerApiKey
from retail.errors import BusinessError
from retail.models import Store

KEY_PREFIX = "ptn_"
# Characters of the raw key kept (and shown in lists) to tell keys apart.
PREFIX_LENGTH = 12
# ``last_used_at`` is written at most this often: a burst of calls costs one write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _fernet() -> Fernet:
    """``PARTNER_SECRET_KEY``, which has no production default; with DEBUG on (development,
    the demo) it falls back to ``SECRET_KEY``."""
    material = getattr(settings, "PARTNER_SECRET_KEY", "")
    if not material and settings.DEBUG:
        material = settings.SECRET_KEY
    if not material:
        raise ImproperlyConfigured("PARTNER_SECRET_KEY must be set to store partner secrets.")
    digest = hashlib.sha256(b"partners.signing-secret:" + material.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def api_key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def partner_signing_secret(*, partner: Partner) -> str:
    """The secret pushes to ``partner`` are signed with."""
    return _fernet().decrypt(partner.signing_secret_encrypted.encode()).decode()


def partner_push_secrets(*, partner: Partner, now=None) -> tuple[str, tuple[str, ...]]:
    """The secret pushes are signed with, and the previous one while its rotation is recent
    (``PARTNER_SECRET_ROTATION_HOURS``): pushes then carry a signature made with each."""
    now = now or timezone.now()
    current = partner_signing_secret(partner=partner)
    grace = timedelta(hours=settings.PARTNER_SECRET_ROTATION_HOURS)
    if (
        partner.previous_signing_secret_encrypted
        and partner.signing_secret_rotated_at is not None
        and now - partner.signing_secret_rotated_at < grace
    ):
        previous = _fernet().decrypt(partner.previous_signing_secret_encrypted.encode()).decode()
        return current, (previous,)
    return current, ()


def _new_signing_secret(partner: Partner) -> str:
    raw = secrets.token_urlsafe(32)
    partner.previous_signing_secret_encrypted = partner.signing_secret_encrypted or ""
    partner.signing_secret_encrypted = _fernet().encrypt(raw.encode()).decode()
    partner.signing_secret_rotated_at = timezone.now()
    return raw


def partner_save(*, partner: Partner) -> str | None:
    """Saves a partner from the admin's form. A new partner gets a signing secret, returned
    (shown once); a changed one keeps its own and None is returned."""
    if partner.pk is None:
        raw = _new_signing_secret(partner)
        partner.save()
        return raw
    partner.save(update_fields=["name", "kind", "active", "webhook_url", "cities"])
    return None


def partner_create(
    *,
    name: str,
    kind: str,
    webhook_url: str = "",
    active: bool = True,
    stores: Iterable[Store] = (),
    cities: Iterable[str] = (),
) -> tuple[Partner, str]:
    """A new partner and its signing secret (raw, shown once)."""
    partner = Partner(
        name=name, kind=kind, webhook_url=webhook_url, active=active, cities=list(cities)
    )
    with transaction.atomic():
        raw = partner_save(partner=partner)
        partner.stores.set(stores)
    return partner, raw


def partner_signing_secret_rotate(*, partner: Partner) -> str:
    """A new signing secret for ``partner``, returned raw (shown once). Pushes are signed with
    the new one and, for ``PARTNER_SECRET_ROTATION_HOURS``, with the old one too."""
    raw = _new_signing_secret(partner)
    partner.save(
        update_fields=[
            "signing_secret_encrypted",
            "previous_signing_secret_encrypted",
            "signing_secret_rotated_at",
        ]
    )
    return raw


def partner_api_key_issue(*, partner: Partner) -> tuple[str, PartnerApiKey]:
    """A new API key for ``partner``: the raw key (shown once) and its row.
    ``partner_inactive`` (409) for a partner that is switched off."""
    if not partner.active:
        raise BusinessError(
            "partner_inactive",
            _("%(partner)s is not active: activate it before issuing keys.")
            % {"partner": partner.name},
        )
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = PartnerApiKey.objects.create(
        partner=partner, prefix=raw[:PREFIX_LENGTH], key_hash=api_key_hash(raw)
    )
    return raw, key


def partner_api_key_revoke(*, key: PartnerApiKey) -> PartnerApiKey:
    """Revokes ``key``: the next call with it is refused. ``key_already_revoked`` (409)."""
    now = timezone.now()
    revoked = PartnerApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=now
    )
    if not revoked:
        raise BusinessError(
            "key_already_revoked",
            _("The key %(prefix)s… was already revoked.") % {"prefix": key.prefix},
        )
    key.revoked_at = now
    return key


def partner_key_authenticate(raw: str) -> PartnerApiKey:
    """The key with this raw value, its partner loaded. ``key_invalid``, ``key_revoked`` and
    ``partner_inactive`` (401)."""
    key = PartnerApiKey.objects.select_related("partner").filter(key_hash=api_key_hash(raw)).first()
    if key is None:
        raise BusinessError("key_invalid", key_invalid_message(), status_code=401)
    if key.revoked_at is not None:
        raise BusinessError("key_revoked", _("This API key has been revoked."), status_code=401)
    if not key.partner.active:
        raise BusinessError("partner_inactive", _("This partner is not active."), status_code=401)
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        PartnerApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def key_invalid_message() -> str:
    return _("This API key is not valid.")
