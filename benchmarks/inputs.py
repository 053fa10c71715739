"""What the `inputs` stage costs at every `dvc repro` on a GLDv2-size list (1.6M rows by default): the first
run on a machine (every image hashed) and later runs (a stat per image, the digest memo read back), plus
md5's throughput, from which the first run on real JPEGs follows."""
from __future__ import annotations

import hashlib
import os
import resource
import tempfile
import time
from pathlib import Path

import typer

from benchmarks.common import write_result


def make_tree(folder: Path, n: int) -> Path:
    """n small files in GLDv2's layout (root/a/b/c/<id>.jpg) and a list CSV of them."""
    rows = ["path,label,split"]
    for i in range(n):
        name = f"{i:016x}"
        path = folder / name[-1] / name[-2] / name[-3] / f"{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
        rows.append(f"{path.relative_to(folder)},{i % 1000},train")
    (folder / "list.csv").write_text("\n".join(rows) + "\n")
    return folder / "list.csv"


def md5_throughput(megabytes: int = 256) -> float:
    """Bytes per second md5 digests from memory."""
    data = os.urandom(megabytes << 20)
    start = time.perf_counter()
    hashlib.md5(data).hexdigest()
    return len(data) / (time.perf_counter() - start)


def main(rows: int = 1_600_000, jpeg_kb: float = 100.0) -> None:
    """Write benchmarks/results/inputs.json."""
    from pipeline.data.fingerprint import DigestMemo
    from pipeline.params import Params
    from stages.inputs import images_fingerprint
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        listed = make_tree(Path(tmp) / "images", rows)
        made = time.perf_counter() - start
        params = Params.model_validate({"prepare": {"source": "list", "list": str(listed)}, "teachers": {}})
        seconds = {}
        for run in ("first", "unchanged", "one_edited"):
            if run == "one_edited":
                next((Path(tmp) / "images").rglob("*.jpg")).write_bytes(b"edited")
            start = time.perf_counter()
            with DigestMemo(Path(tmp) / "memo.sqlite") as memo:
                fingerprint = images_fingerprint(params, memo)
                hashed = memo.hashed
            seconds[run] = time.perf_counter() - start
            assert fingerprint["rows"] == rows and hashed == {"first": rows, "unchanged": 0, "one_edited": 1}[run]
        memo_mb = (Path(tmp) / "memo.sqlite").stat().st_size / 2**20
    throughput = md5_throughput()
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    first_on_jpegs = seconds["first"] + rows * jpeg_kb * 1024 / throughput  # plus reading them, bounded by the disk
    figures = {"rows": rows, "tree_written_s": made, "first_run_s": seconds["first"],
               "unchanged_run_s": seconds["unchanged"], "one_edited_run_s": seconds["one_edited"],
               "unchanged_us_per_row": seconds["unchanged"] / rows * 1e6, "memo_mb": memo_mb,
               "md5_mb_per_s": throughput / 2**20, "first_run_on_jpegs_s_estimate": first_on_jpegs,
               "jpeg_kb": jpeg_kb, "peak_rss_gb": peak_gb}
    write_result("inputs", {"rows": rows, "layout": "root/a/b/c/<id>.jpg", "file_bytes": 16}, figures,
                 {"unchanged run < 60 s at 1.6M rows": seconds["unchanged"] < 60})


if __name__ == "__main__":
    typer.run(main)
