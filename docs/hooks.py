"""MkDocs hook: publish a few pictures that live outside docs/ under assets/, so the pages and README share one file."""

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
PICTURES = {
    "assets/query_strategy.png": "notebooks/figures/query_strategy.png",
    "assets/stimuli_by_target.png": "models/psychometric/figures/stimuli_by_target.png",
}


def on_files(files, config):
    for uri, source in PICTURES.items():
        files.append(File.generated(config, uri, abs_src_path=str(ROOT / source)))
    return files
