# tagengine worker image: `docker build -t tagengine .`, then `docker run tagengine worker`
# (or `generate`, `watch`, `replay`, `catalog check`), configured by the environment
# (README.md, "Configuration").

# The cockpit's chart library, Apache ECharts, from the npm registry as cockpit/package-lock.json
# pins it (what `make cockpit` does); only the built file goes into the image.
FROM node:20-slim AS cockpit
WORKDIR /cockpit
COPY cockpit/package.json cockpit/package-lock.json ./
RUN npm ci --no-audit --no-fund \
    && mkdir build \
    && cp node_modules/echarts/dist/echarts.min.js build/

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Dependencies first, so that a change of the code does not reinstall them. Every dependency
# (faust-streaming[rocksdict], aiokafka, orjson, ...) installs from a wheel: no compiler needed.
WORKDIR /src
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --prefer-binary -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY connectors ./connectors
COPY rules ./rules
COPY state ./state
COPY streams ./streams
RUN pip install --no-deps . \
    && cd / && rm -rf /src

# The cockpit served at / (streams/cockpit.py): the page's sources and the built chart library.
COPY cockpit/*.html cockpit/*.js cockpit/*.css /opt/tagengine/cockpit/
COPY --from=cockpit /cockpit/build/ /opt/tagengine/cockpit/build/

# An unprivileged user; /data is the worker's state (TAGENGINE_DATADIR), owned by that user so
# that a named volume mounted there is too.
RUN useradd --create-home --uid 10001 tagengine \
    && mkdir -p /data \
    && chown tagengine:tagengine /data
USER tagengine
WORKDIR /home/tagengine
ENV TAGENGINE_DATADIR=/data \
    TAGENGINE_WEB_PORT=6066 \
    TAGENGINE_COCKPIT_DIR=/opt/tagengine/cockpit
VOLUME ["/data"]
EXPOSE 6066

ENTRYPOINT ["tagengine"]
CMD ["worker"]
