# The runt image. Its default command is `runt web`; compose.yaml also uses it for
# `runt db upgrade` and `runt agent`. Configuration comes from RUNT_* variables
# (see configs/runt.yaml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# CPU-only torch first, from PyTorch's CPU index. `pip install .` below then finds
# torch already satisfied and never resolves a CUDA build. Its own layer, so a code
# change does not download it again.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# The project (not editable; configs/runt.yaml is installed as package data).
# Only the packages are copied, never a local .venv or data directory.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY broker/ broker/
COPY actors/ actors/
COPY web/ web/
COPY cli/ cli/
COPY configs/ configs/
RUN pip install .

# Run as an unprivileged user.
RUN useradd --create-home --uid 10001 runt
USER runt
WORKDIR /home/runt

# Listen on every interface inside the container (the config default is 127.0.0.1).
ENV RUNT_WEB_HOST=0.0.0.0
EXPOSE 8000
CMD ["runt", "web"]
