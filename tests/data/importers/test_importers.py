import gzip
import pickle
import struct

import numpy as np
import pytest
from PIL import Image

from pipeline.data.importers.images import import_folder, import_mnist, read_idx
from pipeline.data.importers.revisited import import_revisited
from pipeline.data.importers.tables import camera_of, import_gldv2, import_inshop, import_reid, import_sop
from pipeline.errors import RdistillError


def image(path, size=(6, 4), color=(200, 10, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def write_revisited(root, name="roxford5k"):
    gallery = ["all_souls_000001", "all_souls_000002", "radcliffe_000003", "bodleian_000004"]
    queries = ["all_souls_000001", "radcliffe_000003"]
    for stem in gallery:
        image(root / "jpg" / f"{stem}.jpg", size=(40, 30))
    gnd = [{"bbx": [2.0, 3.0, 20.5, 25.0], "easy": [1], "hard": [], "junk": [0]},
           {"bbx": [0, 0, 10, 10], "easy": [2], "hard": [3], "junk": []}]
    with open(root / f"gnd_{name}.pkl", "wb") as f:
        pickle.dump({"imlist": gallery, "qimlist": queries, "gnd": gnd}, f)
    return gallery, queries


def test_revisited_gallery_then_cropped_queries_with_truth_in_rows(tmp_path):
    gallery, queries = write_revisited(tmp_path)
    rows = import_revisited(tmp_path, "roxford5k")
    assert [p.name for p in rows.paths] == [f"{s}.jpg" for s in gallery + queries]
    assert rows.splits == ["gallery"] * 4 + ["query"] * 2
    assert rows.bboxes[4] == (2.0, 3.0, 20.5, 25.0) and rows.bboxes[0] is None
    assert rows.ground_truth["queries"][1] == {"row": 5, "easy": [2], "hard": [3], "junk": []}


def test_revisited_missing_key_is_named(tmp_path):
    with open(tmp_path / "gnd_rparis6k.pkl", "wb") as f:
        pickle.dump({"imlist": [], "gnd": []}, f)
    with pytest.raises(RdistillError, match=r"gnd_rparis6k.pkl: missing key 'qimlist'"):
        import_revisited(tmp_path, "rparis6k")


class RunsACommand:
    """A pickle that would run a shell command when loaded by pickle.load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def test_a_ground_truth_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    with open(tmp_path / "gnd_roxford5k.pkl", "wb") as f:
        pickle.dump({"imlist": [], "qimlist": [], "gnd": [RunsACommand(marker)]}, f)
    with pytest.raises(RdistillError, match=r"gnd_roxford5k.pkl: not a readable pickle \(it names posix.system, "
                                            r"which a ground-truth file has no use for; refused without running it\)"):
        import_revisited(tmp_path, "roxford5k")
    assert not marker.exists()


def test_a_ground_truth_with_numpy_arrays_as_the_benchmark_ships_it_loads(tmp_path):
    gallery, queries = write_revisited(tmp_path)
    gnd = [{"bbx": np.array([2.0, 3.0, 20.5, 25.0]), "easy": np.array([1]), "hard": np.array([], dtype=np.int64),
            "junk": np.array([0])}, {"bbx": [0, 0, 10, 10], "easy": np.array([2]), "hard": np.array([3]), "junk": []}]
    with open(tmp_path / "gnd_roxford5k.pkl", "wb") as f:
        pickle.dump({"imlist": gallery, "qimlist": queries, "gnd": gnd}, f)
    rows = import_revisited(tmp_path, "roxford5k")
    assert rows.ground_truth["queries"][0] == {"row": 4, "easy": [1], "hard": [], "junk": [0]}
    assert rows.bboxes[4] == (2.0, 3.0, 20.5, 25.0)


def test_gldv2_csv_maps_ids_to_nested_folders(tmp_path):
    (tmp_path / "train.csv").write_text("id,landmark_id\n6e158a47eb2ca3f6,142820\n0a1b2c3d4e5f6a7b,7\n")
    rows = import_gldv2(tmp_path / "train.csv", tmp_path / "train")
    assert rows.paths[0] == tmp_path / "train/6/e/1/6e158a47eb2ca3f6.jpg"
    assert rows.labels == [142820, 7] and rows.splits == ["train", "train"]


def test_sop_train_and_test_files(tmp_path):
    (tmp_path / "Ebay_train.txt").write_text("image_id class_id super_class_id path\n"
                                             "1 1 1 bicycle_final/111085122871_0.JPG\n2 1 1 bicycle_final/111085122871_1.JPG\n")
    (tmp_path / "Ebay_test.txt").write_text("image_id class_id super_class_id path\n"
                                            "1 11319 1 bicycle_final/251952414262_0.JPG\n")
    rows = import_sop(tmp_path)
    assert rows.labels == [1, 1, 11319] and rows.splits == ["train", "train", "test"]
    assert rows.paths[2] == tmp_path / "bicycle_final/251952414262_0.JPG"


def test_inshop_partition_file(tmp_path):
    (tmp_path / "list_eval_partition.txt").write_text(
        "3\nimage_name item_id evaluation_status\n"
        "img/WOMEN/Dresses/id_00000002/02_1_front.jpg    id_00000002 train\n"
        "img/WOMEN/Skirts/id_00000080/01_1_front.jpg     id_00000080 query\n"
        "img/WOMEN/Skirts/id_00000080/01_2_side.jpg      id_00000080 gallery\n")
    rows = import_inshop(tmp_path)
    assert rows.labels == [2, 80, 80] and rows.splits == ["train", "query", "gallery"]


def test_reid_lists_with_cameras(tmp_path):
    (tmp_path / "list_train.txt").write_text("0000/0000_000_01_0303morning_0015_0.jpg 0\n")
    (tmp_path / "list_query.txt").write_text("0001/0001_000_05_0303morning_0020_0.jpg 1\n")
    (tmp_path / "list_gallery.txt").write_text("0001/0001_003_07_0303noon_0100_1.jpg 1\n")
    rows = import_reid(tmp_path)
    assert rows.cameras == [1, 5, 7] and rows.splits == ["train", "query", "gallery"]
    assert rows.paths[1] == tmp_path / "test/0001/0001_000_05_0303morning_0020_0.jpg"
    assert camera_of("0002_c3s1_000451_03.jpg") == 3  # Market-1501 naming


def test_folder_one_class_per_subfolder_stratified(tmp_path):
    for cls in ("cat", "dog"):
        for i in range(4):
            image(tmp_path / cls / f"{i}.PNG")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    rows = import_folder(tmp_path, train_fraction=0.5, seed=0)
    assert len(rows.paths) == 8 and sorted(set(rows.labels)) == [0, 1]
    for label in (0, 1):
        assert [s for s, lab in zip(rows.splits, rows.labels) if lab == label].count("train") == 2


def write_idx(path, array, compress=False):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


def test_mnist_idx_files_exported_as_pngs(tmp_path):
    src = tmp_path / "mnist"
    src.mkdir()
    train = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    write_idx(src / "train-images-idx3-ubyte", train)
    write_idx(src / "train-labels-idx1-ubyte", np.array([5, 0, 4]))
    write_idx(src / "t10k-images-idx3-ubyte.gz", train[:2], compress=True)
    write_idx(src / "t10k-labels-idx1-ubyte.gz", np.array([7, 2]), compress=True)
    rows = import_mnist(src, tmp_path / "out")
    assert rows.labels == [5, 0, 4, 7, 2] and rows.splits == ["train"] * 3 + ["test"] * 2
    assert np.array_equal(np.asarray(Image.open(rows.paths[1])), train[1])
    assert read_idx(src / "t10k-labels-idx1-ubyte.gz").tolist() == [7, 2]


def test_truncated_idx_is_refused(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 10, 28, 28) + b"\x00" * 5)
    with pytest.raises(RdistillError, match="5 values for declared shape"):
        read_idx(path)


def test_r1m_distractors_follow_the_revisited_gallery_and_keep_its_truth(tmp_path):
    from pipeline.data.importers.distractors import import_distractors, with_gallery_rows
    from pipeline.data.listfile import ImageList
    write_revisited(tmp_path / "roxford5k")
    (tmp_path / "r1m").mkdir()
    (tmp_path / "r1m/revisitop1m.txt").write_text("a/b/1000001\n\na/c/1000002.png\n")
    base = import_revisited(tmp_path / "roxford5k", "roxford5k")
    rows = with_gallery_rows(base, import_distractors(tmp_path / "r1m/revisitop1m.txt"))
    assert rows.paths[6:] == [tmp_path / "r1m/a/b/1000001.jpg", tmp_path / "r1m/a/c/1000002.png"]
    assert rows.splits[6:] == ["gallery", "gallery"] and rows.labels[6:] == [-1, -1] and rows.bboxes[6:] == [None, None]
    assert rows.ground_truth == base.ground_truth
    listed = ImageList(tmp_path, [str(p) for p in rows.paths], rows.paths, np.array(rows.labels), np.array(rows.splits))
    # ground truth names gallery positions: the first four are unchanged, the distractors come after
    assert listed.gallery_rows().tolist() == [0, 1, 2, 3, 6, 7]
    with pytest.raises(RdistillError, match="missing.txt: distractor list not found"):
        import_distractors(tmp_path / "missing.txt")
