import re

import pytest

from pipeline.data.listfile import read_list, write_list
from pipeline.errors import RdistillError


def test_list_round_trip_keeps_every_column(tmp_path):
    path = tmp_path / "sub/list.csv"
    write_list(path, ["a.jpg", "/abs/b.jpg", "a.jpg", "c d.jpg"], [3, -1, 3, 0], ["train", "query", "query", "gallery"],
               cameras=[1, 2, -1, 4], bboxes=[None, None, (1.0, 2.0, 5.5, 6.0), None], digests=["x", "y", "z", "w"])
    got = read_list(path)
    assert got.ids == ["a.jpg", "/abs/b.jpg", "a.jpg#bbox=1,2,5.5,6", "c d.jpg"]  # the crop makes row 2 its own id
    assert [str(p) for p in got.paths] == [str(tmp_path / "sub/a.jpg"), "/abs/b.jpg", str(tmp_path / "sub/a.jpg"),
                                           str(tmp_path / "sub/c d.jpg")]
    assert got.labels.tolist() == [3, -1, 3, 0] and got.cameras.tolist() == [1, 2, -1, 4]
    assert got.splits.tolist() == ["train", "query", "query", "gallery"]
    assert got.bboxes == [None, None, (1.0, 2.0, 5.5, 6.0), None]
    assert got.train_rows().tolist() == [0] and got.query_rows().tolist() == [1, 2] and len(got.paths) == 4


@pytest.mark.parametrize("lines, message", [
    (["a.jpg,1,train", "b.jpg,2,train", "a.jpg,3,test", "b.jpg,1,test"], "list.csv:4: duplicate row 'a.jpg' (first on line 2)"),
    (["a.jpg,1,train", "b.jpg,x,train"], "list.csv:3: label 'x' is not an integer"),
    (["a.jpg,1,train", "b.jpg,1,valid"], "list.csv:3: unknown split 'valid'"),
    (["a.jpg,1"], "list.csv: not a readable list"),
    ([], "list.csv: image list has no rows"),
])
def test_bad_lists_name_the_line(tmp_path, lines, message):
    (tmp_path / "list.csv").write_text("\n".join(["path,label,split", *lines]) + "\n")
    with pytest.raises(RdistillError, match=re.escape(message)):
        read_list(tmp_path / "list.csv")
