"""Parameters a small dataset cannot feed are refused in one line naming the key and both numbers."""
import numpy as np
import pytest

from pipeline.data.sizes import (check_components, check_dataset, check_mine_k, check_revisited, check_student,
                                 check_teacher_fitting, check_test_queries, check_validation, class_query_counts,
                                 index_minimum, recipe_key)
from pipeline.errors import RdistillError
from pipeline.params import Params

TEACHER = {"t": {"arch": "resnet18"}}


def params(**sections) -> Params:
    return Params.model_validate({"teachers": TEACHER, **sections})


def three_classes(per_class: int, splits_of) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(3), per_class)
    return labels, np.array([splits_of(i % per_class) for i in range(len(labels))])


def test_validation_that_empties_training_names_both_numbers():
    with pytest.raises(RdistillError, match=r"^prepare.validation: 200 of 145 training images leaves none to train "
                                            r"on; set a share \(e.g. 0.2\) or a smaller count$"):
        check_validation(200, 145, np.array([], dtype=int), np.zeros(145, dtype=int), stratified=True)


def test_stratified_validation_that_takes_a_whole_class_is_refused():
    with pytest.raises(RdistillError, match="holds out every image of class 2 \\(1\\)"):
        check_validation(0.5, 5, np.array([0, 1]), np.array([0, 1, 2]), stratified=True)
    check_validation(0.5, 5, np.array([0, 1]), np.array([0, 1, 2]), stratified=False)  # whole classes: expected


def test_batch_larger_than_the_training_rows_names_the_key_that_set_it():
    p = params(train={"override": {"batch_size": 128}}, students={"s": {"method": "csd", "teacher": "t"}})
    with pytest.raises(RdistillError, match=r"^train.override.batch_size: a batch of 128 for students.s, but 116 "
                                            r"training images \(every batch is full; prepare.validation holds out 29 "
                                            r"more\); set a batch size of at most 116$"):
        check_student(p, "students", "s", p.students["s"].method, p.students["s"].recipe, np.zeros(116, dtype=int), held_out=29)
    check_student(p, "students", "s", p.students["s"].method, p.students["s"].recipe, np.zeros(128, dtype=int))  # exactly one full batch


def test_recipe_key_follows_the_layers():
    p = params(train={"recipe": {"batch_size": 16}, "csd": {"recipe": {"batch_size": 32}}},
               students={"a": {"method": "csd", "teacher": "t", "recipe": {"batch_size": 8}},
                         "b": {"method": "csd", "teacher": "t"}, "c": {"method": "no_distill", "teacher": "t"},
                         "d": {"method": "d3still", "teacher": "t"}})
    assert recipe_key(p.train, "csd", "a", p.students["a"].recipe, "batch_size") == "students.a.recipe.batch_size"
    assert recipe_key(p.train, "csd", "b", p.students["b"].recipe, "batch_size") == "train.csd.recipe.batch_size"
    assert recipe_key(p.train, "no_distill", "c", p.students["c"].recipe, "batch_size") == "train.recipe.batch_size"
    assert recipe_key(p.train, "d3still", "d", p.students["d"].recipe, "batch_size") == \
        "train.d3still.recipe.batch_size (the paper's)"


def test_pairs_from_labels_need_two_images_of_every_class():
    p = params(train={"override": {"batch_size": 2}}, ensembles={"m": {"method": "whiten_mtd"}})
    with pytest.raises(RdistillError, match=r"^train.whiten_mtd.pairs: labels, but class 2 has one training image "
                                            r"\(1 of 3 classes\); set pairs: views or neighbours$"):
        check_student(p, "ensembles", "m", p.ensembles["m"].method, p.ensembles["m"].recipe, np.array([0, 0, 1, 1, 2]))
    check_student(p, "ensembles", "m", p.ensembles["m"].method, p.ensembles["m"].recipe, np.array([0, 0, 1, 1, 2, 2]))
    views = params(train={"override": {"batch_size": 2}, "whiten_mtd": {"pairs": "views"}}, extract={"views": 1},
                   ensembles={"m": {"method": "whiten_mtd"}})
    with pytest.raises(RdistillError, match="extract.views ≥ 2 \\(it is 1\\)"):
        check_student(views, "ensembles", "m", views.ensembles["m"].method, views.ensembles["m"].recipe, np.array([0, 0, 1, 1]))


def test_d3still_lists_longer_than_a_batch_are_refused():
    p = params(train={"override": {"batch_size": 8}}, students={"d": {"method": "d3still", "teacher": "t"}})
    with pytest.raises(RdistillError, match=r"^train.d3still.k: lists of 10 for students.d, longer than its batch "
                                            r"of 8 \(train.override.batch_size\)"):
        check_student(p, "students", "d", p.students["d"].method, p.students["d"].recipe, np.zeros(20, dtype=int))


def test_teacher_fitting_needs_two_images_and_two_classes():
    with pytest.raises(RdistillError, match="hold 4 images in 1 classes"):
        check_teacher_fitting(params(teachers={"t": {"arch": "resnet18", "weights": "train"}}), np.zeros(4, dtype=int))
    check_teacher_fitting(params(teachers={"t": {"arch": "resnet18", "weights": "x.pt"}}), np.zeros(4, dtype=int))


def test_neighbours_and_components_against_the_rows():
    with pytest.raises(RdistillError, match=r"^mine.k: 64 neighbours of each of 12 training images \(at most 11\); "
                                            r"set mine.k ≤ 11$"):
        check_mine_k(64, 12)
    with pytest.raises(RdistillError, match="at most 11"):
        check_mine_k(12, 12)
    check_mine_k(11, 12)
    with pytest.raises(RdistillError, match="32, but 12 training images span at most 11 directions"):
        check_components(32, 12)
    check_components(11, 12)
    with pytest.raises(RdistillError, match="exceeds the feature dimension 8"):
        check_components(11, 100, dim=8)


def test_index_minimum_from_the_factory_string():
    assert index_minimum("Flat") == (0, "")
    assert index_minimum("PQ8x4")[0] == 16
    assert index_minimum("PQ16")[0] == 256
    assert index_minimum("IVF1024,PQ8x4fs")[0] == 1024
    assert index_minimum("IVF64,PQ8")[0] == 256


def test_queries_with_a_positive_counted_by_brute_force():
    labels = np.array([0, 0, 1, 2, 2, 2])
    rows = np.arange(6)
    assert class_query_counts(labels, rows, rows) == type(class_query_counts(labels, rows, rows))(6, 5, 6)
    cameras = np.array([0, 1, 0, 0, 0, 1])  # class 2: rows 3 and 4 share camera 0, row 5 is on camera 1
    assert class_query_counts(labels, rows, rows, cameras).with_positive == 5
    cameras = np.array([0, 0, 0, 0, 0, 0])
    assert class_query_counts(labels, rows, rows, cameras).with_positive == 0
    with pytest.raises(RdistillError, match="none of its 6 queries has a positive in its gallery of 6 images"):
        check_test_queries(class_query_counts(labels, rows, rows, cameras), [1], "the test split")
    with pytest.raises(RdistillError, match="k=10 exceeds the test gallery of 6 images"):
        check_test_queries(class_query_counts(labels, rows, rows), [1, 10], "the test split")


def test_revisited_setting_without_any_positive_is_refused():
    truth = {"queries": [{"row": 0, "easy": [], "hard": [3], "junk": []}, {"row": 1, "easy": [], "hard": [], "junk": []}]}
    with pytest.raises(RdistillError, match="^gnd_x.pkl: in the easy setting none of its 2 queries has a positive"):
        check_revisited(truth, "gnd_x.pkl")
    truth["queries"][1]["easy"] = [4]
    check_revisited(truth, "gnd_x.pkl")


def test_the_demo_settings_pass_on_the_demo_sizes_and_fail_on_thirty_images():
    demo = params(prepare={"validation": 200}, whiten={"n_components": 32}, mine={"index": "PQ8x4"},
                  train={"override": {"batch_size": 128}}, students={"c": {"method": "csd", "teacher": "t"}})
    labels = np.arange(1797) % 10
    splits = np.where(np.arange(1797) < 800, "train", np.where(np.arange(1797) < 1000, "val", "test"))
    check_dataset(demo, labels, splits, None, None, "digits")
    labels, splits = three_classes(10, lambda i: "train" if i < 4 else "test")
    with pytest.raises(RdistillError, match="^train.override.batch_size: a batch of 128 for students.c, but 12"):
        check_dataset(demo, labels, splits, None, None, "photos")


def test_a_reference_student_needs_two_classes():
    p = params(train={"override": {"batch_size": 2}}, students={"n": {"method": "no_distill", "teacher": "t"}})
    with pytest.raises(RdistillError, match="^students.n: no_distill learns from the training labels alone, which "
                                            "hold 1 class"):
        check_student(p, "students", "n", "no_distill", p.students["n"].recipe, np.zeros(4, dtype=int))
    check_student(p, "students", "n", "no_distill", p.students["n"].recipe, np.array([0, 0, 1, 1]))


def test_query_counts_equal_a_loop_over_the_queries(rng):
    labels = rng.integers(-1, 12, 300)
    cameras = rng.integers(0, 3, 300)
    splits = rng.choice(["query", "gallery", "test", "train"], 300)
    queries, gallery = np.flatnonzero(np.isin(splits, ("query", "test"))), np.flatnonzero(np.isin(splits, ("gallery", "test")))
    for cams in (None, cameras):
        expected = sum(any(labels[g] == labels[q] and g != q and (cams is None or cams[g] != cams[q]) for g in gallery)
                       for q in queries if labels[q] >= 0)
        assert class_query_counts(labels, queries, gallery, cams) == type(class_query_counts(labels, queries, gallery))(
            len(queries), expected, len(gallery))
