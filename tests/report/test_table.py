from pipeline.report.table import results_table, results_title


def scores(m):
    return {"mAP": m, "R@1": 0.5, "R@5": 0.75, "R@10": 1.0}


def test_table_has_teacher_student_and_reference_rows_with_ratios():
    teachers = {"t": {"raw": {**scores(0.9), "dim": 64}, "whitened": {**scores(0.8), "dim": 8}}}
    students = {
        "csd": {"method": "csd", "arch": "resnet18", "teacher": "t", "symmetric": scores(0.7), "asymmetric": scores(0.6)},
        "ref": {"method": "no_distill", "arch": "resnet18", "teacher": "t", "symmetric": scores(0.65)},
    }
    students["mtd"] = {"method": "whiten_mtd", "arch": "resnet18", "teacher": "t", "teachers": ["t", "u"],
                       "symmetric": scores(0.66)}
    ensembles = {"EM": {"teachers": ["t", "u"], "symmetric": scores(0.85),
                        "diagnostics": {"t": {"view_mrr": 0.5}, "u": {"view_mrr": 0.25}, "EM": {"view_mrr": 0.75}}}}
    table = results_table(teachers, students, {"csd": {"seconds_per_epoch": 2.0}}, ensembles)
    lines = table.splitlines()
    assert lines[2] == "| teacher t | raw (64-d) | 0.900 | 0.500 | 0.750 | 1.000 |  |"
    assert lines[4] == ("| EM (t + u) | ensemble mean of whitened similarities | 0.850 | 0.500 | 0.750 | 1.000 "
                        "| MRR of plain image vs its view: EM 0.750 (t 0.500, u 0.250) |")
    assert lines[5].startswith("| ref (resnet18, no_distill) | symmetric | 0.650")
    assert lines[6] == "| csd (resnet18, csd) | symmetric | 0.700 | 0.500 | 0.750 | 1.000 | 2.0 s/epoch; +0.050 mAP vs no_distill |"
    assert lines[7].endswith("| 0.75 × whitened teacher mAP |")  # 0.6 / 0.8
    assert lines[8].startswith("| mtd (resnet18, whiten_mtd from t + u) | symmetric | 0.660")
    assert len(lines) == 9
    assert results_title(teachers, students) == "# Results (class protocol)"


def test_revisited_results_get_easy_medium_hard_columns():
    def rev(m):
        return {s: {"mAP": m, "mP@10": 0.5} for s in ("easy", "medium", "hard")}
    teachers = {"t": {"raw": {**rev(0.6), "dim": 64}, "whitened": {**rev(0.5), "dim": 8}}}
    students = {"s": {"method": "csd", "arch": "r18", "teacher": "t", "symmetric": rev(0.4), "asymmetric": rev(0.45)}}
    lines = results_table(teachers, students, {}).splitlines()
    assert lines[0] == "| model | setting | E mAP | M mAP | H mAP | M mP@10 | notes |"
    assert lines[5].endswith("| 0.450 | 0.450 | 0.450 | 0.500 | 0.90 × whitened teacher mAP |")
    assert results_title(teachers, students).startswith("# Results (revisited protocol")


def test_multi_teacher_rows_show_whether_the_teachers_similarities_are_aligned():
    # Whiten-MTD's premise: whitened teachers' cosine similarities spread alike (isotropic: variance 1/D)
    teachers = {"t": {"raw": {**scores(0.9), "dim": 64}, "whitened": {**scores(0.8), "dim": 32}}}
    students = {"mtd": {"method": "whiten_mtd", "arch": "resnet18", "teacher": "t", "teachers": ["t", "u"],
                        "symmetric": scores(0.66)}}
    angles = {"t": {"var_cos": 0.0562, "isotropic_var_cos": 0.03125}, "u": {"var_cos": 0.049, "isotropic_var_cos": 0.03125}}
    ensembles = {"EM": {"teachers": ["t", "u"], "symmetric": scores(0.85),
                        "diagnostics": {k: {"angles": a} for k, a in angles.items()}}}
    row = results_table(teachers, students, {}, ensembles).splitlines()[-1]
    assert row.endswith("| variance of whitened cosines: t 0.056, u 0.049 (isotropic 0.031) |"), row
