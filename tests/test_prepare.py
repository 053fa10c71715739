import pytest

from pipeline.data.importers import Imported
from pipeline.params import PrepareParams
from pipeline.data.importers.combine import with_training_rows


def test_training_rows_of_a_second_source_are_appended_after_ground_truth_rows(tmp_path):
    main = Imported([tmp_path / "g.jpg", tmp_path / "q.jpg"], [-1, -1], ["gallery", "query"],
                    bboxes=[None, (0, 0, 4, 4)], ground_truth={"queries": [{"row": 1}]})
    extra = Imported([tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.jpg"], [3, 4, 5], ["train", "test", "train"])
    rows, repeated = with_training_rows(main, extra)
    assert [p.name for p in rows.paths] == ["g.jpg", "q.jpg", "a.jpg", "c.jpg"] and repeated == []
    assert rows.splits == ["gallery", "query", "train", "train"] and rows.labels == [-1, -1, 3, 5]
    assert rows.bboxes == [None, (0, 0, 4, 4), None, None] and rows.cameras is None
    assert rows.ground_truth == {"queries": [{"row": 1}]}


def test_training_rows_that_repeat_a_row_of_the_main_source_are_left_out(tmp_path):
    from pipeline.data.listfile import read_list, write_list
    main = Imported([tmp_path / "g.jpg", tmp_path / "q.jpg"], [-1, -1], ["gallery", "query"])
    extra = Imported([tmp_path / "a.jpg", tmp_path / "sub/../g.jpg"], [3, 4], ["train", "train"])
    rows, repeated = with_training_rows(main, extra)
    assert [p.name for p in rows.paths] == ["g.jpg", "q.jpg", "a.jpg"] and repeated == [tmp_path / "sub/../g.jpg"]
    write_list(tmp_path / "list.csv", [p.name for p in rows.paths], rows.labels, rows.splits)
    assert len(read_list(tmp_path / "list.csv")) == 3  # what prepare writes, its readers accept


@pytest.mark.parametrize("raw, message", [
    ({"source": "revisited", "root": "/x"}, "name: required with source 'revisited'"),
    ({"source": "sop"}, "root: required with source 'sop'"),
    ({"source": "gldv2", "root": "/x"}, "list: required with source 'gldv2'"),
])
def test_sources_require_their_inputs(raw, message):
    with pytest.raises(ValueError, match=message):
        PrepareParams.model_validate(raw)
