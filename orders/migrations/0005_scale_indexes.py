# Indexes the scale bench (bench/scale.py) found missing at 1,000,000 orders.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0004_console_indexes"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="order",
            index=models.Index(
                fields=["paid_at", "id", "paid_fen", "refunded_fen"], name="order_paid_amounts"
            ),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(
                condition=models.Q(status__in=["paid", "ready_for_pickup"]),
                fields=["paid_at", "id"],
                name="order_waiting",
            ),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["updated_at", "id"], name="order_updated"),
        ),
    ]
