# One image for every role: write-api, read-api, projector (and serve, tokens, rebuild, audit).
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY write_side ./write_side
COPY read_side ./read_side
COPY projections ./projections
COPY runtime ./runtime
COPY edge ./edge
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim
RUN useradd --system --create-home --uid 10001 customers \
    && mkdir /data && chown customers /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/data
USER customers
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
CMD ["customers", "serve"]
