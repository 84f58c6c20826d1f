"""The Celery app. The beat schedule lives here and nowhere else."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retail.settings")

app = Celery("retail")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "beat-heartbeat": {
        "task": "retail.beat_heartbeat",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
}
