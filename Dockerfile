# One image for every greenprune service and the app; compose.yaml picks the command.
#   docker build -t greenprune .
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t greenprune .
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
# The CPU build by default; pass a CUDA index (see above) for the GPU eval service.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GREENPRUNE_HOME=/data \
    TOKENIZERS_PARALLELISM=false

WORKDIR /app

# torch first and pinned, from its own index, so the project's install does not replace it.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# The project: metadata first for layer caching, then the packages.
COPY pyproject.toml README.md ./
COPY greenprune ./greenprune
COPY pruning_service ./pruning_service
COPY eval_service ./eval_service
COPY analytics ./analytics
COPY experiments ./experiments
RUN pip install . \
    && python -c "import torch; assert torch.__version__.startswith('${TORCH_VERSION}'), torch.__version__"

# An unprivileged user that owns the state root; named volumes mounted below /data inherit it.
RUN useradd --create-home --uid 10001 greenprune \
    && mkdir -p /data/results /data/checkpoints /data/models /data/pruning /data/eval \
    && chown -R greenprune:greenprune /data
USER greenprune

EXPOSE 50051 50052 50053 8501
CMD ["python", "-m", "analytics.server"]
