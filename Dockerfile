# dbcost as a container image: the CLI, runtime dependencies only, as a non-root user.
#
#   docker build -t dbcost:0.1.0 .                                   # the plain image
#   docker build --build-arg EXTRAS=kafka,postgres -t dbcost:0.1.0 .  # with the Kafka and PostgreSQL sinks
#   docker run --rm dbcost:0.1.0 --version
#
# Stage 1 builds the wheel from the source tree (pip wheel: the backend pyproject.toml names); stage 2
# installs only that wheel and its runtime dependencies into a venv on a slim Python and runs as `dbcost`
# (uid 10001). tests/test_packaging.py checks these steps against pyproject.toml.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:${PYTHON_VERSION}-slim
ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/dbcost/bin:$PATH
COPY --from=build /dist /dist
RUN python -m venv /opt/dbcost \
 && wheel=$(ls /dist/dbcost-*.whl) \
 && /opt/dbcost/bin/pip install --no-cache-dir "${wheel}${EXTRAS:+[$EXTRAS]}" \
 && rm -rf /dist \
 && useradd --create-home --uid 10001 --shell /usr/sbin/nologin dbcost \
 && mkdir /work && chown dbcost:dbcost /work
USER dbcost
WORKDIR /work
ENTRYPOINT ["dbcost"]
CMD ["--help"]
