"""The default tiers, so a fresh database (tests, the demo, a new shop) has a ladder to climb.
Staff may change them in the admin afterwards."""

from django.db import migrations

# code, name, spend needed in the rolling window (fen), discount %, points multiplier (%)
TIERS = [
    ("regular", "普通会员", 0, 0, 100),
    ("silver", "银卡", 100_000, 5, 120),
    ("gold", "金卡", 500_000, 8, 150),
    ("diamond", "钻石", 2_000_000, 10, 200),
]


def create_tiers(apps, schema_editor):
    Tier = apps.get_model("members", "Tier")
    if Tier.objects.exists():
        return
    Tier.objects.bulk_create(
        Tier(
            code=code,
            name=name,
            threshold_fen=threshold,
            discount_percent=discount,
            points_multiplier=multiplier,
        )
        for code, name, threshold, discount, multiplier in TIERS
    )


def remove_unused_tiers(apps, schema_editor):
    Tier = apps.get_model("members", "Tier")
    Tier.objects.filter(code__in=[code for code, *_rest in TIERS], members__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("members", "0004_coupons")]

    operations = [migrations.RunPython(create_tiers, remove_unused_tiers)]
