# The suite's image: the payment suite and its sandbox on Locust 2.47.0 (the version of requirements.txt).
#
#   docker build -t payment-load-suite:2.47.0 .                 on the official Locust image
#   docker build --build-arg BASE_IMAGE=payment-suite-base:bookworm -t payment-load-suite:2.47.0 .
#                                                               where it cannot be pulled (see
#                                                               deploy/docker/local-base.sh)
# Build arguments, all optional: BASE_IMAGE (any image with python3 and its venv module);
# PIP_INDEX_URL / PIP_EXTRA_INDEX_URL / PIP_TRUSTED_HOST (the package index, when PyPI is reached
# through a mirror); EXTRA_CA_CERTS (PEM text of CA certificates pip must trust, e.g. of a TLS proxy).
# They are used by the build stage only: the final image holds the suite and its virtualenv.
ARG BASE_IMAGE=locustio/locust:2.47.0

FROM ${BASE_IMAGE} AS deps
USER root
ARG PIP_INDEX_URL=
ARG PIP_EXTRA_INDEX_URL=
ARG PIP_TRUSTED_HOST=
ARG EXTRA_CA_CERTS=
COPY requirements.txt /tmp/requirements.txt
# /opt/venv is the official image's virtualenv (Locust is already there); elsewhere it is created.
RUN set -eu; \
    for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST; do \
      eval "value=\${$var:-}"; if [ -z "$value" ]; then unset "$var"; fi; \
    done; \
    [ -x /opt/venv/bin/python ] || python3 -m venv /opt/venv; \
    bundle=/etc/ssl/certs/ca-certificates.crt; \
    [ -f "$bundle" ] || bundle="$(/opt/venv/bin/python -c 'import pip._vendor.certifi as c; print(c.where())')"; \
    cat "$bundle" > /tmp/ca.pem; printf '%s\n' "$EXTRA_CA_CERTS" >> /tmp/ca.pem; \
    PIP_CERT=/tmp/ca.pem /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -q \
      -r /tmp/requirements.txt; \
    rm -f /tmp/ca.pem

FROM ${BASE_IMAGE}
USER root
COPY --from=deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The image user (uid 1000) where the base has none; the entrypoint runs as the owner of reports/.
RUN id locust >/dev/null 2>&1 || useradd --create-home --uid 1000 --shell /bin/sh locust
WORKDIR /home/locust/suite
COPY . .
RUN install -m 0755 deploy/docker/entrypoint.sh /usr/local/bin/suite-entrypoint \
    && mkdir -p reports && chown locust: reports
EXPOSE 8089 5557
# `docker run IMAGE -f locustfile.py ...` runs Locust; any other command runs as given.
ENTRYPOINT ["/usr/local/bin/suite-entrypoint"]
CMD ["-f", "locustfile.py"]
