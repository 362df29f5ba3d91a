"""Sentence embeddings of papers and queries, cached in the store.

The model (sentence-transformers) is loaded lazily, on the first text that is not already cached: a rerun of
a day whose papers and topic vectors are all in the store never loads it.
Vectors are float32 and L2-normalised, so a dot product is a cosine similarity.
"""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from ..errors import InputError, MissingDependency, ModelError
from ..io import LOADING, fs_name, fs_text, json_loads, quiet_transformers
from ..records import Paper

if TYPE_CHECKING:
    from ..io import Progress
    from ..settings import Settings
    from ..store import Store

DEFAULT_EMBEDDER = "minilm"
EMBEDDER_KEY = "prefilter.embedder"     # the setting naming the embedder, which an error loading it carries
# Papers are embedded this many at a time, so memory stays bounded however large the input is.
CHUNK = 256
# Queries (topic descriptions, keywords) share the store's embeddings table under ids with this prefix;
# an arXiv id never starts with it.
QUERY_PREFIX = "~query:"
# Bumped when the text a paper is embedded as (or its token cut) changes, so stale cached vectors are not reused.
TEXT_VERSION = "2"
# Texts are cut to this many tokens: the length the sentence-transformers "all-*" models (MiniLM, mpnet) were
# fine-tuned on, and half MiniLM's 256-token limit, so a day embeds about twice as fast. Measured on the five
# shared days it ranks as well as 256 tokens (zero-shot AUC 0.838 vs 0.840).
DEFAULT_MAX_TOKENS = 128


def paper_text(p: Paper) -> str:
    """What a paper is embedded as: its title and abstract; the title alone when the abstract is empty."""
    title = " ".join((p.title or "").split())
    abstract = " ".join((p.abstract or "").split())
    if not abstract:
        return title
    if not title:
        return abstract
    return f"{title}. {abstract}"


def text_hash(text: str) -> str:
    return hashlib.sha256(f"{TEXT_VERSION}\0{text}".encode("utf-8")).hexdigest()[:20]


def query_key(text: str) -> tuple[str, str]:
    """A query's (id, text) as embed_queries embeds and stores it: its whitespace collapsed, under QUERY_PREFIX
    and the text's hash."""
    text = " ".join(text.split())
    return QUERY_PREFIX + text_hash(text), text


def embedder_key(name: str | None, models_dir: Path | None = None) -> str:
    """The name an embedder's vectors are stored under: a preset's name, a folder's absolute path (as text:
    `--embedder ./mödel` under LC_ALL=C, UTF-8 mode off, ended 'surrogates not allowed' in SQLite), or the
    Hugging Face id as given."""
    name = (name or DEFAULT_EMBEDDER).strip()
    if not name:
        return DEFAULT_EMBEDDER
    from ..models import presets
    if name in presets(models_dir):
        return name
    path = Path(name).expanduser()
    if path.exists():
        return fs_text(str(path.resolve()))
    return name


def is_folder_key(key: str) -> bool:
    """Whether `key` (an embedder key) is a local folder's: one ending in @<digits> is otherwise read as a
    token cut ('minilm@256'), but a folder of that name is that folder (embedder_key keys a folder by its
    absolute path)."""
    path = Path(fs_name(key))
    return path.is_absolute() and path.is_dir()


def key_parts(key: str) -> tuple[str, str]:
    """An embedder key's (embedder, token cut): 'minilm@256' -> ('minilm', '256'); without a cut, or the key of
    a folder whose own name ends in @<digits>, the default cut."""
    name, at, tokens = key.rpartition("@")
    if at and tokens.isdigit() and not is_folder_key(key):
        return name, tokens
    return key, str(DEFAULT_MAX_TOKENS)


def _same_key_twice(key: str, models_dir: Path | None) -> str | None:
    """The other embedder a key ending in @<digits> also names, when both exist: the folder `key` and the
    embedder before the @ cut at that many tokens (their vectors would share one key in the store)."""
    name, at, tokens = key.rpartition("@")
    if not (at and tokens.isdigit() and is_folder_key(key)):
        return None
    from ..models import presets
    return name if name in presets(models_dir) or is_folder_key(name) else None


def slug(key: str) -> str:
    """A file-name-safe form of an embedder key."""
    base = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(key).name or key)[:40]
    return f"{base}-{hashlib.sha1(key.encode()).hexdigest()[:8]}" if base != key else base


def token_limit(name: str, models_dir: Path | None = None) -> int | None:
    """The most tokens a local sentence-transformers model reads (its sentence_bert_config.json's
    max_seq_length): a prepared preset's, a folder's, or a Hugging Face id's in the local cache; None when that
    is not known without loading it (an unprepared preset, an id not cached, a folder without the file)."""
    from ..models import hub_cached, looks_like_hub_id, presets
    p = presets(models_dir).get(name)
    if p is not None and not p.prepared:
        return None                    # a preset is never loaded from a folder of its name elsewhere
    folder = p.path if p is not None else Path(name).expanduser()
    if p is None and not folder.exists() and looks_like_hub_id(name):
        folder = hub_cached(name)      # never the network: an id not cached is clamped when it loads
        if folder is None:
            return None
    try:
        cfg = json_loads((Path(folder) / "sentence_bert_config.json").read_text(encoding="utf-8"))
        n = int(cfg["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return n if n > 0 else None


class Embedder:
    """Embeds texts with one sentence-transformers model; `model` loads on first use."""

    def __init__(self, name: str | None = None, *, max_tokens: int | None = None, batch_size: int = 32,
                 device: str | None = None, threads: int | None = None, models_dir: Path | None = None):
        """max_tokens: cut each text to this many tokens (default DEFAULT_MAX_TOKENS; never more than the
        model's own limit). Another cut gives other vectors, cached under their own key, e.g. "minilm@256".
        threads: torch's intra-op threads for this process (default: torch's own choice), for workers whose
        environment says otherwise (a Ray actor is started with OMP_NUM_THREADS=1).
        models_dir: where prepared presets live (Settings.models_dir)."""
        if max_tokens is not None and max_tokens < 8:
            raise InputError("must be at least 8", key="prefilter.max_tokens")
        self.name = name or DEFAULT_EMBEDDER
        limit = token_limit(self.name, models_dir) if max_tokens is not None else None
        if limit is not None and max_tokens > limit:
            # the model would read `limit` tokens anyway; a larger cut would only file the same vectors under a
            # key of their own (and rebuild the corpus index for nothing)
            raise InputError(f"must be at most {limit}: {self.name} reads no more tokens than that",
                             key="prefilter.max_tokens")
        self.max_tokens = max_tokens or DEFAULT_MAX_TOKENS
        suffix = f"@{self.max_tokens}" if self.max_tokens != DEFAULT_MAX_TOKENS else ""
        self.models_dir = models_dir
        self.key = embedder_key(self.name, models_dir) + suffix
        other = _same_key_twice(self.key, models_dir)
        if other is not None:
            raise InputError(f"'{self.key}' names both the folder {self.key} and {other} cut at "
                             f"{self.key.rpartition('@')[2]} tokens, whose vectors would be stored as one; rename "
                             "the folder to a name that does not end in @ and digits", key="prefilter.embedder")
        self.batch_size = batch_size
        self.device = device or "cpu"
        self.threads = threads
        self._model = None
        self._lock = threading.Lock()
        self.texts_encoded = 0          # how many texts went through the model (tests and benchmarks read it)
        self.load_seconds = 0.0

    @classmethod
    def from_settings(cls, settings: "Settings", **kw) -> "Embedder":
        """The embedder the settings name (settings.prefilter: embedder, max_tokens; settings.models_dir);
        `kw`: device, threads, batch_size."""
        want = settings.prefilter
        return cls(want.embedder, max_tokens=want.max_tokens, models_dir=settings.models_dir, **kw)

    # ------------------------------------------------------------------ the model
    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self):
        import time
        from ..models import resolve
        try:
            path = resolve(self.name, kind="embedder", models_dir=self.models_dir)
        except ModelError as e:
            # a preset not prepared, an id not cached offline: the setting's fault, as every failure to load it
            # here, named by the CLI as the --embedder or ranker.toml line it came from (a store serving part
            # of the texts gets this far)
            e.key = e.key or EMBEDDER_KEY
            raise
        t0 = time.perf_counter()                # the load time counts torch's import too
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise MissingDependency("sentence-transformers", "", "the embedding prefilter") from None
        if self.threads:
            import torch
            torch.set_num_threads(int(self.threads))
        # a Hugging Face id not in the local cache is downloaded, except in offline mode (where resolve has
        # already refused one that is not cached); one that is cached loads from the cache without asking the
        # Hub (a firewalled network would make every load wait on connection timeouts)
        from .. import netguard
        from ..models import NOT_CACHED, hub_cached, looks_like_hub_id
        offline = netguard.is_offline()
        downloads = path == self.name and looks_like_hub_id(path) and not offline and hub_cached(path) is None
        try:
            with quiet_transformers():
                model = SentenceTransformer(path, device=self.device, local_files_only=not downloads)
        except Exception as e:  # a folder that is not a sentence-transformers model, a failed download
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            if downloads:
                raise ModelError(f"{NOT_CACHED}, and downloading it from Hugging Face failed: {first}",
                                 where=self.name, key=EMBEDDER_KEY) from None
            raise ModelError(f"cannot load the embedder: {first}", where=self.name, key=EMBEDDER_KEY) from None
        model.max_seq_length = min(self.max_tokens, model.max_seq_length or self.max_tokens)
        self.load_seconds = time.perf_counter() - t0
        return model

    @property
    def dim(self) -> int:
        m = self.model
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised float32 vectors, one row per text (no cache; check_finite before they are used)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        model = self.model
        with quiet_transformers():      # once for the call: it switches settings of the whole process
            for i in range(0, len(texts), CHUNK):
                chunk = list(texts[i:i + CHUNK])
                v = model.encode(chunk, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
                out.append(np.asarray(v, dtype=np.float32))
                self.texts_encoded += len(chunk)
        return _normalise(np.concatenate(out))

    def check_finite(self, vectors: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """`vectors` (encode's), or a ModelError naming the model and the first text (`names`: what each row is,
        "paper 2505.01234") whose vector holds a number that is not finite (NaN or infinity). Stored, such a
        vector was any paper's neighbour and had any topic score. An error, not the paper left out: a model
        that gives NaN for one text (damaged weights, half precision overflowing on a device) cannot be trusted
        with the others, and a ranking silently short of papers is worse than a run that stops; nothing of the
        batch is stored."""
        v = np.atleast_2d(np.asarray(vectors))
        bad = np.flatnonzero(~np.isfinite(v).all(axis=1)) if v.size else []
        if len(bad):
            more = f" (and {len(bad) - 1} more of {len(v)})" if len(bad) > 1 else ""
            raise ModelError(f"gave numbers that are not finite (NaN or infinity) for {names[int(bad[0])]}{more}: "
                             "its weights or this device's arithmetic are broken; none of them was stored",
                             where=self.key)
        return vectors

    # ------------------------------------------------------------------ cached
    def _cached(self, ids: list[str], texts: list[str], store: "Store | None", progress=None,
                not_stored: set[str] = frozenset()) -> np.ndarray:
        """`not_stored`: ids whose new vectors are used, not written over the store's (an older version's text
        of a paper whose newer text the store holds)."""
        hashes = [text_hash(t) for t in texts]
        found = store.get_embeddings(dict(zip(ids, hashes)), self.key) if store is not None else {}
        # longest first, so each chunk holds texts of similar length (less padding, faster batches)
        missing = sorted((i for i, pid in enumerate(ids) if pid not in found), key=lambda i: -len(texts[i]))
        vecs: dict[str, np.ndarray] = dict(found)
        if missing and self._model is None and progress is not None:     # say so: torch + the model take a while
            stage = f"{LOADING}{self.name}"
            progress(stage, 0, None)
            self.model
            progress(stage, 1, 1)
        for start in range(0, len(missing), CHUNK):
            idx = missing[start:start + CHUNK]
            new = self.check_finite(self.encode([texts[i] for i in idx]), [_name(ids[i], texts[i]) for i in idx])
            if store is not None:
                store.put_embeddings(((ids[i], hashes[i], new[j]) for j, i in enumerate(idx)
                                      if ids[i] not in not_stored), self.key)
            for j, i in enumerate(idx):
                vecs[ids[i]] = new[j]
            if progress is not None:
                progress("embedding", min(start + CHUNK, len(missing)), len(missing))
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        dims = {v.shape[0] for v in vecs.values()}
        if len(dims) != 1:
            raise ModelError(f"the store holds vectors of several sizes {sorted(dims)} for embedder "
                             f"'{self.key}'; the model at that name changed", where=self.key)
        return np.stack([vecs[pid] for pid in ids]).astype(np.float32, copy=False)

    def embed_papers(self, papers: Sequence[Paper], store: "Store | None" = None,
                     progress: "Progress | None" = None) -> np.ndarray:
        """One normalised row per paper, in order; cached vectors (same embedder, same text) are reused and
        new ones are written to the store, except for a paper whose newer version the store already holds (an
        old day ranked again): the store keeps that version's text (Store.add_papers), so its vector stays too.
        progress("embedding", done, total) hears of each chunk."""
        ids = [p.id for p in papers]
        texts = [paper_text(p) for p in papers]
        for p, t in zip(papers, texts):
            if not t:
                raise InputError("the paper has neither a title nor an abstract", where=p.id)
        older: set[str] = set()
        if store is not None:
            stored = store.versions({p.id for p in papers if p.version is not None})
            older = {p.id for p in papers if p.version is not None and p.version < stored.get(p.id, 0)}
        if len(set(ids)) != len(ids):
            # the same id twice: embed once, repeat the row
            uniq = list(dict.fromkeys(ids))
            first = {pid: texts[i] for i, pid in reversed(list(enumerate(ids)))}
            m = self._cached(uniq, [first[u] for u in uniq], store, progress, older)
            pos = {u: i for i, u in enumerate(uniq)}
            return m[[pos[pid] for pid in ids]]
        return self._cached(ids, texts, store, progress, older)

    def unstored(self, papers: Sequence[Paper], store: "Store") -> list[str]:
        """The ids of `papers` whose vector of this embedder the store lacks, or holds for another text: those
        embed_papers would load the model for. Reads the stored texts' hashes only, never a vector. Every
        distinct text of an id counts: a later day's newer text of a paper is embedded by a call of its own (a
        day's), and the store holds one text's vector of each paper."""
        pairs = dict.fromkeys((p.id, text_hash(paper_text(p))) for p in papers)
        have = store.embedding_hashes(dict.fromkeys(pid for pid, _ in pairs), self.key)
        return list(dict.fromkeys(pid for pid, h in pairs if have.get(pid) != h))

    def unstored_queries(self, texts: Iterable[str], store: "Store") -> list[str]:
        """The ids (query_key's) of the query `texts` whose vector of this embedder the store lacks: those
        embed_queries would load the model for. Reads the stored texts' hashes only."""
        by_id = dict(query_key(t) for t in texts)
        have = store.embedding_hashes(by_id, self.key)
        return [q for q, t in by_id.items() if have.get(q) != text_hash(t)]

    def embed_queries(self, texts: Iterable[str], store: "Store | None" = None,
                      progress: "Progress | None" = None) -> np.ndarray:
        """Query vectors (topic descriptions, keywords), cached in the store under their text's hash (query_key)."""
        keys = [query_key(t) for t in texts]
        ids = [q for q, _ in keys]
        by_id = dict(keys)
        uniq = list(by_id)
        loads = None if progress is None else (lambda st, d, t: progress(st, d, t) if st.startswith(LOADING) else None)
        m = self._cached(uniq, [by_id[u] for u in uniq], store, loads)
        pos = {u: i for i, u in enumerate(uniq)}
        return m[[pos[q] for q in ids]] if ids else m


def _start(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 3] + "..."


def _name(pid: str, text: str) -> str:
    """What an id of the embeddings table is, in a message: a paper, or a query (by its text)."""
    return f'the query "{_start(text)}"' if pid.startswith(QUERY_PREFIX) else f"paper {pid}"


def _normalise(m: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(m, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return (m / n).astype(np.float32, copy=False)
