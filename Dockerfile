# syntax=docker/dockerfile:1
# Multi-stage: dependencies are built in a throw-away stage; the runtime image is slim and non-root.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8000
RUN groupadd --system app && useradd --system --gid app --home-dir /srv --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
COPY --chown=root:root mfa ./mfa
COPY --chown=root:root app ./app
COPY --chown=root:root worker ./worker
COPY --chown=root:root sandbox ./sandbox
COPY --chown=root:root gunicorn.conf.py Procfile ./
USER app
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ['PORT'], timeout=2)"
# The web process; the worker runs the same image with `python -m worker`.
CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"]
