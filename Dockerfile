# One image for every CareHub service: `carehub run gateway|rules|api|all`.
FROM python:3.11-slim AS build
ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir "uv>=0.5,<1"
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY carehub carehub
COPY gateway gateway
COPY services services
COPY firmware_sim firmware_sim
COPY sites sites
RUN uv sync --locked --no-dev --no-editable

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home /var/lib/carehub carehub \
    && mkdir -p /var/lib/carehub && chown carehub /var/lib/carehub
COPY --from=build /app/.venv /app/.venv
COPY --from=build /app/sites /app/sites
ENV PATH=/app/.venv/bin:$PATH CAREHUB_DB=/var/lib/carehub/carehub.db PYTHONUNBUFFERED=1
USER carehub
WORKDIR /var/lib/carehub
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --retries=3 \
    CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CAREHUB_HTTP_PORT', '8080'), timeout=4)" || exit 1
ENTRYPOINT ["carehub"]
CMD ["run", "all"]
