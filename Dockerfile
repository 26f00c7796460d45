# syntax=docker/dockerfile:1
# One image for the four services; Kubernetes picks the process with `command:`
# (python -m services.<name> [migrate|seed|rebuild|...], python -m runtime.dlq_cli).
# Build: make images (needs a Docker engine with BuildKit).

# Both stages must share one interpreter: the venv links to /usr/local/bin/python3.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python -m venv /opt/venv
# Runtime dependencies only ([project].dependencies, none of the extras), in their
# own layer so a code change does not reinstall them. Binary wheels only: the
# builder has no compiler, and a dependency that needs one should fail here.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > requirements.txt \
 && /opt/venv/bin/pip install --only-binary=:all: -r requirements.txt
# Only the runtime packages: devstack/, bench/ and tests/ are kept out (.dockerignore),
# so packages.find does not pick them up.
COPY README.md ./
COPY runtime ./runtime
COPY schemas ./schemas
COPY services ./services
# Non-editable: code and package data (migrations, rules, CSVs, templates) land in
# site-packages, where the code finds them through Path(__file__).
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/pip uninstall -y pip setuptools wheel \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv/lib

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="hotline111" \
      org.opencontainers.image.description="Referral platform for anti-trafficking hotlines: intake, referral, notify, reporting" \
      org.opencontainers.image.source="https://github.com/hotline111/hotline111" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
# Nothing installs packages at run time, so the base image's pip/setuptools/wheel go.
# The root filesystem is read-only in Kubernetes: the stdlib is compiled now (the
# base image ships no .pyc), so no start pays for it. A passwd entry for 10001
# spares libraries that look the user up.
RUN python -m pip uninstall -y pip setuptools wheel \
 && python -m compileall -q -j 0 --invalidation-mode unchecked-hash /usr/local/lib/python3.11 \
 && groupadd --gid 10001 hotline111 \
 && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin hotline111
COPY --from=builder /opt/venv /opt/venv
# PYTHONSAFEPATH: the working directory never shadows the installed packages.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONSAFEPATH=1 \
    HOST=0.0.0.0 \
    PORT=8000
# Numeric, so runAsNonRoot can verify it; equal to the Deployments' runAsUser/runAsGroup.
USER 10001:10001
EXPOSE 8000
# Exec form: python is PID 1 and receives SIGTERM itself (graceful shutdown).
# Kubernetes always sets command:; this default just serves intake.
CMD ["python", "-m", "services.intake"]
