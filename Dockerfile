# Minimal image: installs the pinned requirements and the package, runs the main job.
# (The Jupyter/TensorBoard/GPU setup arrives with the notebooks and Docker issue.)
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt pyproject.toml README.md ./
COPY tfp_aline ./tfp_aline
RUN pip install --no-cache-dir -r requirements.txt -e .
COPY . .
CMD ["tfp-aline", "train", "--config", "configs/migraine.yaml"]
