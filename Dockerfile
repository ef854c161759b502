# syntax=docker/dockerfile:1
# One Dockerfile, three targets, every stage FROM the same base:
#   production  web and worker, without sandbox/   docker build --target production .
#   dev         production plus the Belvo sandbox   the default (last) target; compose runs the sandbox
#               from it, and so does the team's container check, which runs web, worker and sandbox
#               from the default target.
# The base is pinned by digest through a named build context, so that this file names only the tag:
#   docker buildx build --build-context python:3.11-slim-bookworm=docker-image://python:3.11-slim-bookworm@sha256:<digest> .
# docker-compose.yml (additional_contexts) and `make image` pass it; README "Deploy" says how to update it.
# No stage is FROM another stage: each repeats the runtime lines below, and tests/test_container.py
# checks that production and dev agree on them.
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt

FROM python:3.11-slim-bookworm AS production
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
COPY --chown=root:root gunicorn.conf.py Procfile ./
USER app
EXPOSE 8000
# The web's probe. The worker and the sandbox run the same image with their own command; compose gives
# each its own healthcheck (the worker: Redis answers it; the sandbox: its /_sandbox/health).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ['PORT'], timeout=2)"
# The web process; the worker runs the same image with `python -m worker`.
CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"]

FROM python:3.11-slim-bookworm AS dev
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
COPY --chown=root:root gunicorn.conf.py Procfile ./
COPY --chown=root:root sandbox ./sandbox
USER app
EXPOSE 8000 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ['PORT'], timeout=2)"
CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"]
