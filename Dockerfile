# The kdag controller image. BASE_IMAGE is any Debian-like image with python3; the default is the public one.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
COPY runner-image/pyproject.toml /src/runner-image/pyproject.toml
COPY runner-image/kdag_runner /src/runner-image/kdag_runner
COPY pyproject.toml README.md /src/kdag/
COPY controller /src/kdag/controller
# Every dependency (and the build backend) at the version and sha256 of controller/requirements.lock, so a
# rebuild installs exactly what was tested or fails; then this tree's two packages, without dependencies.
RUN python3 -m venv /opt/kdag \
 && /opt/kdag/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes \
      -r /src/kdag/controller/requirements.lock \
 && /opt/kdag/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation \
      /src/runner-image /src/kdag \
 && rm -rf /src
ENV PATH=/opt/kdag/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["kdag", "controller"]
