# One image for every CareHub service: `carehub run gateway|rules|api|all`, `carehub sim`.
# Both stages on the same base, so the venv's interpreter is the one the runtime has.
FROM python:3.11-slim-bookworm AS build
ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir "uv>=0.5,<1"
WORKDIR /app
# Dependencies first, from the lock file only: a source change does not re-install them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY app app
COPY carehub carehub
COPY gateway gateway
COPY services services
COPY firmware_sim firmware_sim
COPY sites sites
RUN uv sync --locked --no-dev --no-editable

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="CareHub" \
      org.opencontainers.image.description="IoT sensor hub for care homes" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 carehub \
    && useradd --system --uid 10001 --gid 10001 --home /var/lib/carehub carehub \
    && mkdir -p /var/lib/carehub && chown 10001:10001 /var/lib/carehub
COPY --from=build /app/.venv /app/.venv
COPY --from=build /app/sites /app/sites
ENV PATH=/app/.venv/bin:$PATH CAREHUB_DB=/var/lib/carehub/carehub.db PYTHONUNBUFFERED=1
# Numeric, so a runtime can tell it is not root without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/carehub
EXPOSE 8080
# For `carehub run api|all`; docker-compose.yml gives the other parts `carehub health <part>`.
HEALTHCHECK --interval=15s --timeout=5s --retries=3 \
    CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CAREHUB_HTTP_PORT', '8080'), timeout=4)" || exit 1
ENTRYPOINT ["carehub"]
CMD ["run", "all"]
