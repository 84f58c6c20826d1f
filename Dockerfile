FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 DATA_DIR=/app/var
WORKDIR /app

COPY pyproject.toml README.md ./
COPY retail ./retail
COPY inventory ./inventory
COPY orders ./orders
COPY members ./members
COPY wechat ./wechat
COPY partners ./partners
COPY templates ./templates
COPY manage.py ./
RUN pip install . \
    && SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && useradd --system --home /app retail && chown -R retail /app/var

USER retail
EXPOSE 8000
# Workers, threads, timeouts: retail/gunicorn_conf.py (WEB_CONCURRENCY, GUNICORN_THREADS, ...).
CMD ["gunicorn", "--config", "python:retail.gunicorn_conf", "retail.wsgi:application"]
