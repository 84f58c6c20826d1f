"""The Celery app. The beat schedule lives here and nowhere else."""

import os

from celery import Celery, bootsteps

from retail.startup import require_secret_key

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retail.settings")

app = Celery("retail")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class RequireSecrets(bootsteps.Step):
    """A worker without its secrets stops before it consumes anything."""

    def __init__(self, worker, **kwargs) -> None:
        require_secret_key()
        super().__init__(worker, **kwargs)


app.steps["worker"].add(RequireSecrets)


app.conf.beat_schedule = {
    "beat-heartbeat": {
        "task": "retail.beat_heartbeat",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
    "release-expired-stock-holds": {
        "task": "inventory.release_expired_holds",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
}
