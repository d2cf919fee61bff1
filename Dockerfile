# tfp_aline: Python 3.11 with TensorFlow and its CUDA libraries (uses a GPU when the host gives the
# container one, the CPU otherwise), the pinned requirements, the package, JupyterLab and TensorBoard.
#   docker build -t tfp-aline .
#   docker run --rm --gpus all -v "$PWD/runs:/app/runs" tfp-aline      # the main job
# docker-compose.yml runs the same image as four services: jupyter, tensorboard, train and serve.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

# A non-root user. Build with --build-arg UID=$(id -u) so that files written into mounted folders
# (runs/, data/, notebooks/) belong to you on the host.
ARG UID=1000
RUN useradd --create-home --uid "${UID}" --shell /bin/bash aline

WORKDIR /app

# Dependencies first, so that editing the code does not reinstall them. tensorflow[and-cuda] is the
# tensorflow version pinned in requirements.txt plus NVIDIA's CUDA and cuDNN wheels; JupyterLab is
# only needed in the image; FastAPI, uvicorn and threadpoolctl are the `serve` extra of pyproject.toml, same pins.
COPY requirements.txt ./
RUN pip install -r requirements.txt "tensorflow[and-cuda]==2.21.0" "jupyterlab==4.6.6" \
    "fastapi==0.165.0" "uvicorn==0.55.0" "threadpoolctl==3.8.0"

# The package itself (editable: /app is the code that runs).
COPY --chown=aline:aline . .
RUN pip install --no-deps -e . \
    && mkdir -p runs \
    && chown aline:aline /app /app/runs

USER aline
EXPOSE 8888 6006 8000
# The main job (README): train on the shipped table, then compare the policy with random queries.
CMD ["tfp-aline", "train", "--config", "configs/migraine.yaml"]
