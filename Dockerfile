# A container image of Cella: the installable tree of scripts/package.sh on a slim Debian.
#
#   docker build -t cella:0.1.0 .
#   docker run -p 18890:18890 -v $PWD/cella.json:/etc/cella/cella.json cella:0.1.0
#
# deploy/kubernetes/ runs this image (as `cella:0.1.0`) as user 10001 on a read-only root
# file system: everything Cella writes goes under /var/lib/cella (its cache and state: a
# volume) and /tmp.
#
# The configuration must listen on 0.0.0.0 and configure tenants (with keys): `cella serve`
# refuses to listen beyond loopback without them. This file is not built on the project's
# own machines (they reach no container registry); keep it simple enough to check by eye.

FROM rust:1.95-bookworm AS build
# componentize-py (Python) and componentize-js (Node) build the interpreter components.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-pip nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN rustup target add wasm32-wasip2 && scripts/package.sh /dist

FROM debian:bookworm-slim
COPY --from=build /dist/cella /opt/cella
RUN groupadd --gid 10001 cella && useradd --uid 10001 --gid 10001 --home-dir /var/lib/cella --create-home cella
ENV PATH=/opt/cella/bin:$PATH HOME=/var/lib/cella
USER 10001:10001
EXPOSE 18890
ENTRYPOINT ["cella"]
CMD ["serve", "--config", "/etc/cella/cella.json"]
