"""gunicorn's settings for the web process: `gunicorn -c python:retail.gunicorn_conf
retail.wsgi:application`, as the Dockerfile and docker-compose.yml run it. Chosen by
bench/tuning.py and the flash-sale and sale-day runs (docs/performance.md, "Tuning"); each can
be changed through the environment.

Threads, not more processes: a request may wait on WeChat Pay or the WeChat API (creating a
JSAPI trade, a payment-code charge), and a thread waiting on the network holds no CPU, where a
sync worker would hold a whole process. On 2 CPUs, 2 processes x 4 threads served the shop mix
as fast as 3 or 5 sync processes, and more threads per process were slower (one interpreter
lock per process). Database connections persist across requests (``CONN_MAX_AGE``, 60 s by
default in retail/settings.py): a new connection per request cost 40% of the throughput.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
# A payment-code charge at the till polls WeChat Pay for up to
# WECHAT_PAY_CODEPAY_DEADLINE_SECONDS (15 s) inside its request.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 30
# Longer than the idle time of the load balancer or proxy in front (which should close first).
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 75))
backlog = 2048
# Recycle a worker now and then (a slow leak in a library cannot grow without end); the jitter
# keeps the workers from restarting at the same moment.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 5000))
max_requests_jitter = 500
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
