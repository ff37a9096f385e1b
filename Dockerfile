# One image for every greenprune service and the app; compose.yaml picks the command.
#   docker build -t greenprune .
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t greenprune .
# Any base with Python 3.11 and its venv module works (BASE_IMAGE); torch comes from an index
# (TORCH_INDEX_URL) or from a folder of wheels mounted into the build (TORCH_FIND_LINKS), e.g.
#   podman build -v /opt/wheels:/wheels:ro --build-arg TORCH_FIND_LINKS=/wheels \
#     --build-arg BASE_IMAGE=localhost/greenprune-base -t greenprune .
# (deploy/compose-test.sh builds it this way, with a WHEELHOUSE folder that it keeps.)
ARG BASE_IMAGE=python:3.11-slim

# -- build: a virtual environment in /opt/greenprune with torch, the project and its deps -----
# (torch's C++ headers and test binaries are dropped: nothing here compiles against torch).
FROM ${BASE_IMAGE} AS build

ARG TORCH_VERSION=2.13.0
# The CPU build by default; pass a CUDA index (see above) for the GPU eval service.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# A folder of torch wheels inside the build (a mount): when set, torch comes from there.
ARG TORCH_FIND_LINKS=
# A CA bundle for pip inside the build (a mount), where the index sits behind a TLS proxy.
ARG PIP_CERT

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Everything pip leaves behind stays in this stage: the final image copies only the venv.
RUN python3 -m venv /opt/greenprune
ENV PATH=/opt/greenprune/bin:$PATH
RUN pip install --upgrade "pip>=25"

# torch first and pinned, from its own source, then held by a constraint so the project's
# install keeps it.
RUN if [ -n "${TORCH_FIND_LINKS}" ]; then \
      pip install --find-links "${TORCH_FIND_LINKS}" "torch==${TORCH_VERSION}"; \
    else \
      pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"; \
    fi \
    && python -c "import torch; print('torch==' + torch.__version__)" > /tmp/torch.txt \
    && grep -q "^torch==${TORCH_VERSION}" /tmp/torch.txt

WORKDIR /src
COPY pyproject.toml README.md ./
COPY greenprune ./greenprune
COPY pruning_service ./pruning_service
COPY eval_service ./eval_service
COPY results_service ./results_service
COPY results_app ./results_app
# With WHEELHOUSE (a writable folder mounted into the build), the dependencies' wheels are kept
# there: a later build installs from it without the network, and fills it again only when
# pyproject.toml asks for something it lacks. Without it, a plain install from the index.
ARG WHEELHOUSE=
RUN set -e; \
    constraint="--constraint /tmp/torch.txt"; \
    if [ -z "${WHEELHOUSE}" ]; then \
      pip install $constraint .; \
    elif ! { ls "${WHEELHOUSE}"/*.whl >/dev/null 2>&1 \
             && pip install --no-index --find-links "${WHEELHOUSE}" $constraint .; }; then \
      torch_source="--extra-index-url ${TORCH_INDEX_URL}"; \
      if [ -n "${TORCH_FIND_LINKS}" ]; then torch_source="--find-links ${TORCH_FIND_LINKS}"; fi; \
      pip wheel --wheel-dir "${WHEELHOUSE}" --find-links "${WHEELHOUSE}" $torch_source \
        $constraint "setuptools>=69" wheel . \
      && rm -f "${WHEELHOUSE}"/greenprune-*.whl \
      && pip install --no-index --find-links "${WHEELHOUSE}" $constraint .; \
    fi; \
    pip check; \
    site="$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"; \
    rm -rf "$site/torch/include" "$site/torch/test"; \
    ln -s "$site/results_app" /opt/greenprune/app

# -- final: the base, the venv, an unprivileged user ---------------------------------------------
FROM ${BASE_IMAGE}

ENV PATH=/opt/greenprune/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GREENPRUNE_HOME=/data \
    TOKENIZERS_PARALLELISM=false

COPY --from=build /opt/greenprune /opt/greenprune

# An unprivileged user (uid 10001) that owns the state root; named volumes mounted below /data
# start as copies of these folders, so they belong to it too. Bases without useradd get the
# passwd and group lines directly.
RUN if command -v useradd >/dev/null 2>&1; then \
      groupadd --gid 10001 greenprune \
      && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin greenprune; \
    else \
      echo "greenprune:x:10001:10001::/home/greenprune:/usr/sbin/nologin" >> /etc/passwd \
      && echo "greenprune:x:10001:" >> /etc/group \
      && mkdir -p /home/greenprune && chown 10001:10001 /home/greenprune; \
    fi \
    && mkdir -p /data/results /data/checkpoints /data/models/cache /data/pruning /data/eval \
    && chown -R 10001:10001 /data
USER 10001:10001
WORKDIR /data

EXPOSE 50051 50052 50053 8501
CMD ["python", "-m", "results_service.server"]
