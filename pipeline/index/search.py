"""FAISS indexes (inner product on l2-normalised features), exact search and neighbour mining."""
from __future__ import annotations

import logging
import re

import faiss
import numpy as np

from pipeline.errors import RdistillError

log = logging.getLogger(__name__)


def gpu_cloner_options() -> faiss.GpuMultipleClonerOptions:
    """How CPU indexes are copied to the GPUs: IVF-PQ with float16 lookup tables, which keeps PQ up to
    96 bytes per vector within the GPU's shared memory (float32 tables stop at about PQ48 for 256 codes)."""
    options = faiss.GpuMultipleClonerOptions()
    options.useFloat16LookupTables = True
    return options


def to_gpu_if_available(index: faiss.Index) -> faiss.Index:
    """The index on all GPUs when FAISS sees any; the CPU index otherwise, or with a warning when FAISS has
    no GPU version of it (fast-scan PQ …x4fs, PQ without IVF, HNSW, more than 96 PQ bytes)."""
    if faiss.get_num_gpus() == 0:
        return index
    try:
        return faiss.index_cpu_to_all_gpus(index, co=gpu_cloner_options())
    except (RuntimeError, AttributeError) as exc:
        log.warning("index kept on CPU (FAISS has no GPU version of it): %s", str(exc).strip().splitlines()[-1])
        return index


def new_index(dim: int, factory: str) -> faiss.Index:
    """An empty CPU index from a FAISS index-factory string, inner-product metric; a clear error if FAISS refuses it."""
    try:
        return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise RdistillError(f"mine.index: FAISS cannot build {factory!r} for dimension {dim} "
                            f"({str(exc).strip().splitlines()[-1]})") from None


# mine.index auto: exact search up to this many rows. Measured on 2 cores at 50k × 512: exact mining
# 25 s, IVF64,PQ64x4fs 16 s (recall@64 0.98 after re-ranking 256 candidates); exact below.
EXACT_BELOW = 50_000
ROWS_PER_LIST = 512  # IVF lists of about this many rows: each query costs the same at any N


def auto_factory(n: int, dim: int, gpu: bool = False, torch_gpu: bool = False) -> str:
    """The index `mine.index: auto` builds for n rows of dim (`gpu`: FAISS sees GPUs; `torch_gpu`: torch does):
    `exact` (torch, pipeline.index.exact_torch) on a GPU that FAISS cannot use, otherwise FAISS exact search
    below EXACT_BELOW rows and IVF above.

    IVF with about n / ROWS_PER_LIST lists (a power of two, at least 16), so that nprobe lists hold
    the same number of rows at any n. On CPU the lists hold PQ codes, one 4-bit sub-quantizer per 8
    dimensions in FAISS's fast-scan layout (trained in seconds where 8-bit codes take minutes, and
    scanned with SIMD), whose shortlist is re-ranked exactly. Fast-scan codes do not run on GPUs,
    which hold the full vectors instead (IVF-Flat: N × D × 4 bytes of GPU memory, exact within the lists).
    """
    if torch_gpu and not gpu:
        return "exact"
    if n <= EXACT_BELOW:
        return "Flat"
    nlist = max(16, 1 << int(round(np.log2(n / ROWS_PER_LIST))))
    if gpu:
        return f"IVF{nlist},Flat"
    m = max(d for d in range(1, max(1, dim // 8) + 1) if dim % d == 0)
    return f"IVF{nlist},PQ{m}x4fs"


# mine.nprobe auto: one list in LISTS_PER_PROBE, at least 16 and at most MAX_AUTO_NPROBE, so that a query
# costs the same at any N above 400k rows. Denser data spreads a neighbourhood over more lists; what a
# constant nprobe loses there, mine.refine recovers (pipeline.index.refine). On the scale benchmark's
# generator at 1.6M rows / 4,096 lists (2,000 sampled rows), recall@64 after re-ranking 256 candidates:
# 0.63 with 32 lists, 0.70 with 64, 0.77 with 128, 0.89 with 512; refined by 8 neighbours' lists: 0.88,
# 0.92, 0.95, 0.98. Search cost per million queries on 2 cores: 485 s at 128 lists, + 325 s for the
# refinement; 717 s at 512 without it. At 400k / 1,024 lists, 16 lists already find 0.97.
LISTS_PER_PROBE = 8
MAX_AUTO_NPROBE = 128


def auto_nprobe(factory: str) -> int:
    """nprobe for `mine.nprobe: auto`: one list in LISTS_PER_PROBE of the factory's IVF lists, within [16, 128]."""
    found = re.search(r"IVF(\d+)", factory)
    return min(MAX_AUTO_NPROBE, max(16, int(found.group(1)) // LISTS_PER_PROBE)) if found else 16


def set_nprobe(index: faiss.Index, nprobe: int) -> faiss.Index:
    """Inverted lists visited per query, for indexes that have them (GPU or CPU IVF, inside any wrapper);
    others are returned unchanged. Setting it is never skipped silently: FAISS's own errors propagate."""
    # GPU indexes first (GpuParameterSpace also walks replicas over several GPUs); a CPU index on a GPU
    # machine (one FAISS cannot move there) has its nprobe in the CPU parameter space.
    spaces = ([faiss.GpuParameterSpace()] if faiss.get_num_gpus() > 0 else []) + [faiss.ParameterSpace()]
    for space in spaces:
        space.initialize(index)
        if "nprobe" in {space.parameter_ranges.at(i).name for i in range(space.parameter_ranges.size())}:
            space.set_index_parameter(index, "nprobe", nprobe)
            return index
    return index


def drop_self(sims: np.ndarray, ids: np.ndarray, self_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own id from its k+1 results (or the last result when it is absent) -> (n, k)."""
    keep = ids != self_ids[:, None]
    overflow = keep.sum(axis=1) > k  # self not found: drop the weakest result instead
    keep[overflow, -1] = False
    return sims[keep].reshape(len(ids), k), ids[keep].reshape(len(ids), k)


def rerank_exact(q: np.ndarray, db: np.ndarray, ids: np.ndarray,
                 pairs_per_step: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """Re-order each row's candidate ids by exact inner product with `db`, gathered from memory.

    q: (n, D), ids: (n, c). Temporaries stay at pairs_per_step × D floats however long the shortlist.
    """
    sims = np.empty(ids.shape, dtype=np.float32)
    step = max(1, pairs_per_step // max(ids.shape[1], 1))  # queries per step
    for first in range(0, len(ids), step):
        sims[first:first + step] = np.einsum("bcd,bd->bc", db[ids[first:first + step]], q[first:first + step])
    sims[ids < 0] = -np.inf  # FAISS pads with id −1 when it finds fewer candidates than asked
    return by_similarity(sims, ids)


def by_similarity(sims: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's (sims, ids) reordered by decreasing similarity (ties keep their order)."""
    order = np.argsort(-sims, axis=1, kind="stable")
    return np.take_along_axis(sims, order, axis=1), np.take_along_axis(ids, order, axis=1)


def neighbours_of(index: faiss.Index, feats: np.ndarray, start: int, stop: int, k: int,
                  shortlist: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (sims, ids) of rows start..stop of `feats` among the other rows of `index` (which holds `feats`).

    With shortlist > k, the index proposes `shortlist` candidates that are re-ranked exactly from
    `feats` (a compressed index for the candidates, the cached features for the order).
    """
    stop = min(stop, len(feats))
    q = feats[start:stop]
    n_candidates = min(max(k, shortlist) + 1, len(feats))
    sims, ids = index.search(q, n_candidates)
    if n_candidates > k + 1:
        sims, ids = rerank_exact(q, feats, ids)
    sims, ids = drop_self(sims[:, :k + 1], ids[:, :k + 1], np.arange(start, stop), k)
    short = np.flatnonzero((ids < 0).any(axis=1))
    if len(short):  # FAISS pads with −1 when the visited lists hold fewer than k other rows
        raise RdistillError(f"mine: the index found fewer than {k} neighbours of training row {start + short[0]} "
                            f"({len(short)} such rows in this batch): raise mine.nprobe or use fewer IVF lists")
    return sims, ids


GPU_MAX_K = 2048  # FAISS's GPU searches return at most this many results per query


def on_gpus(index: faiss.Index) -> bool:
    """Whether FAISS searches `index` on GPUs (a GPU index, or replicas / shards over GPUs)."""
    return faiss.get_num_gpus() > 0 and (type(index).__name__.startswith("Gpu")
                                          or isinstance(index, (faiss.IndexReplicas, faiss.IndexShards)))


def check_gpu_k(index: faiss.Index, k: int, what: str, advice: str) -> None:
    """Refuse, in one line, asking an index on GPUs for more than GPU_MAX_K results per query."""
    if k > GPU_MAX_K and on_gpus(index):
        raise RdistillError(f"{what}: {k} results per query, but FAISS on GPUs returns at most {GPU_MAX_K}; {advice}")


def save_index(index: faiss.Index, path) -> None:
    """Write an index (copied back from the GPUs first when it lives there)."""
    if faiss.get_num_gpus() > 0:
        try:
            index = faiss.index_gpu_to_cpu(index)
        except (RuntimeError, AttributeError):
            pass  # already a CPU index
    faiss.write_index(index, str(path))


def load_index(path) -> faiss.Index:
    """Read an index written by save_index, moved to the GPUs when present."""
    return to_gpu_if_available(faiss.read_index(str(path)))


def recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean fraction of each row's exact top-k found in its approximate top-k (ids compared: ties count as misses)."""
    hits = [len(np.intersect1d(a, e)) for a, e in zip(approx_ids, exact_ids)]
    return float(np.mean(hits) / exact_ids.shape[1])


def dot_rounding_bound(q: np.ndarray, db: np.ndarray) -> np.ndarray:
    """Per query, a bound on the float32 rounding error of its inner product with any row of `db`.

    A D-term float32 dot product differs from the exact one by at most D·u·Σ|q_i x_i| ≤ D·u·|q|·|x|
    (u = 2^-24, Cauchy-Schwarz); two implementations (FAISS, numpy) may each err by that much.
    """
    unit = np.finfo(np.float32).eps / 2
    return 2 * q.shape[1] * unit * np.linalg.norm(q, axis=1) * np.linalg.norm(db, axis=1).max(initial=0.0)


def recall_with_ties(found_sims: np.ndarray, exact_sims: np.ndarray, tolerance: np.ndarray) -> float:
    """Mean fraction of the exact top-k matched by the found lists, a found neighbour counting when it
    is as similar as the exact k-th one up to the rounding `tolerance` (so near-ties that two kernels
    order differently are hits). found_sims: (n, k) recomputed similarities of the found neighbours,
    exact_sims: (n, k) the exact top-k's, tolerance: (n,)."""
    kth = exact_sims[:, -1] - tolerance
    return float(np.mean((found_sims >= kth[:, None]).sum(axis=1) / exact_sims.shape[1]))
