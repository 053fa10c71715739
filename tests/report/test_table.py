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


def seeded_run(seeds):
    """Metrics and per-query AP of a small run: teacher t, no_distill, csd (also asymmetric) far above it and pkt
    a little above it, each over `seeds` seeds whose offsets are the same for every student (SD 0.02)."""
    import numpy as np

    offsets = np.array([-0.02, 0.0, 0.02][:seeds])[:, None]
    pattern = 0.1 * np.sin(np.arange(50))
    pattern -= pattern.mean()

    def ap(level):
        return level + pattern[None] + offsets

    teachers = {"t": {"raw": {**scores(0.9), "dim": 64, "queries": 50}, "whitened": {**scores(0.8), "dim": 8, "queries": 50}}}
    students = {
        "ref": {"method": "no_distill", "arch": "resnet18", "teacher": "t", "symmetric": scores(0.6)},
        "csd": {"method": "csd", "arch": "resnet18", "teacher": "t", "symmetric": scores(0.75), "asymmetric": scores(0.8)},
        "pkt": {"method": "pkt", "arch": "resnet18", "teacher": "t", "symmetric": scores(0.62)},
    }
    queries = {"ref": {"symmetric": ap(0.6)}, "csd": {"symmetric": ap(0.75), "asymmetric": ap(0.8)},
               "pkt": {"symmetric": ap(0.62)}}
    teacher_queries = {"t": {"raw": 0.9 + pattern, "whitened": 0.8 + pattern}}
    return teachers, students, queries, teacher_queries


def test_every_compared_figure_has_its_interval_and_only_holm_survivors_are_starred():
    from pipeline.evaluate.intervals import query_resamples
    from pipeline.report.comparison import compare_students

    teachers, students, queries, teacher_queries = seeded_run(3)
    comparison = compare_students(students, queries, teacher_queries, lambda n: query_resamples(n, 1000, 0), teachers)
    lines = results_table(teachers, students, {}, None, None, comparison).splitlines()
    assert lines[0] == ("| model | setting | mAP | R@1 | R@5 | R@10 | mAP 95% interval | R@1 95% interval | notes |")
    raw = comparison["teachers"]["t"]["raw"]
    assert lines[2].startswith(f"| teacher t | raw (64-d) | 0.900 | 0.500 | 0.750 | 1.000 | [{raw['low']:.3f}, "
                               f"{raw['high']:.3f}] | [")  # R@1 over the 50 queries from its rate
    csd = [line for line in lines if line.startswith("| csd")]
    # pooled s = 0.02 on 6 df, no query spread: ± t_{0.975, 6} · 0.02 · √(2/3) = ± 2.446912 · 0.016330 = ± 0.040
    assert csd[0].endswith("+0.150 [+0.110, +0.190] vs no_distill, Holm p < 0.001 * |")
    assert "× whitened teacher mAP" in csd[1] and "vs whitened teacher, Holm p 1.000 |" in csd[1]
    pkt = next(line for line in lines if line.startswith("| pkt"))
    assert "vs no_distill, Holm p" in pkt and not pkt.endswith("* |")  # 0.02 is below what 3 seeds detect
    assert sum(line.endswith("* |") for line in lines) == sum(c["marked"] for c in comparison["comparisons"].values()) == 1


def test_the_note_names_the_family_and_states_what_the_seeds_can_detect():
    from scipy import stats

    from pipeline.evaluate.intervals import query_resamples
    from pipeline.report.comparison import compare_students
    from pipeline.report.table import intervals_note

    teachers, students, queries, teacher_queries = seeded_run(3)
    comparison = compare_students(students, queries, teacher_queries, lambda n: query_resamples(n, 1000, 0), teachers)
    note = intervals_note(comparison, 1000)
    assert "df = Σ(n_i − 1) = 6" in note and "df = Σ(n_i − 1) = 2" in note  # symmetric: 3 students; asymmetric: 1
    assert ("Family: the 3 differences in this table, symmetric vs no_distill and asymmetric vs the whitened teacher"
            in note)
    assert "Holm-adjusted p (Holm 1979" in note and "unadjusted 95% interval" in note
    assert "over the test queries only" in note and "conditional on them" in note
    mdd = (stats.t.ppf(0.975, 6) + stats.t.ppf(0.8, 6)) * 0.02 * (2 / 3) ** 0.5
    assert f"{mdd:.3f} symmetric (k = 2" in note
    assert "The smallest marked difference, +0.150 (csd symmetric vs no_distill), would need 2 seeds per side" in note
    assert "A difference without a mark is not evidence of no effect" in note
    assert "One seed" not in note


def test_one_seed_prints_no_stars_and_says_why():
    from pipeline.evaluate.intervals import query_resamples
    from pipeline.report.comparison import compare_students
    from pipeline.report.table import intervals_note

    teachers, students, queries, teacher_queries = seeded_run(1)
    comparison = compare_students(students, queries, teacher_queries, lambda n: query_resamples(n, 1000, 0), teachers)
    assert comparison["csd"]["symmetric"]["vs_no_distill"]["excludes_zero"]  # the query bootstrap alone would mark it
    table = results_table(teachers, students, {}, None, None, comparison)
    assert "*" not in table
    note = intervals_note(comparison, 1000)
    assert "One seed per student" in note and "With one seed no difference is marked" in note
    assert "58 of 200" in note and "train two seeds or more" in note and "not evidence of no effect" in note
    assert "MDD" not in note


def test_online_rows_show_their_speed_and_the_cache_cost_family_under_the_table():
    from pipeline.evaluate.intervals import query_resamples
    from pipeline.report.comparison import compare_students
    from pipeline.report.table import caching_note

    teachers, students, queries, teacher_queries = seeded_run(3)
    students["csd_online"] = {**students["csd"]}
    queries["csd_online"] = {"symmetric": queries["csd"]["symmetric"] - 0.1, "asymmetric": queries["csd"]["asymmetric"]}
    comparison = compare_students(students, queries, teacher_queries, lambda n: query_resamples(n, 1000, 0), teachers,
                                  online={"csd_online": "csd"})
    training = {"csd": {"seconds_per_epoch": 2.0}, "csd_online": {"seconds_per_epoch": 30.0, "online": True}}
    rows = [line for line in results_table(teachers, students, training, comparison=comparison).splitlines()
            if line.startswith("| csd_online")]
    assert "online: 30.0 s/epoch, 15.0× csd's; csd − online +0.100 [" in rows[0] and rows[0].endswith(" * |")
    assert "vs no_distill" not in rows[0]
    assert "; csd − online +0.000 [" in rows[1] and not rows[1].endswith(" * |")
    note = caching_note(comparison, training)
    assert "Family: the 2 cached − online differences" in note
    assert "csd symmetric: the cache gains 0.100 mAP." in note
    assert "csd 2.0 s cached, 30.0 s online (15.0× slower)" in note
    equal = compare_students(students, {**queries, "csd_online": queries["csd"]}, teacher_queries,
                             lambda n: query_resamples(n, 1000, 0), teachers, online={"csd_online": "csd"})
    assert "None is marked: at these seeds the cache's cost is not detectable (MDD " in caching_note(equal, training)
    assert caching_note(compare_students(students, queries, teacher_queries, lambda n: query_resamples(n, 1000, 0),
                                         teachers), training) == ""


def test_the_teachers_share_is_stated_with_the_differences_that_survive_it():
    from pipeline.report.table import teacher_share_note

    assert "not measured for this list" in teacher_share_note(None, {})
    share = {"settings": {"teacher_seeds": [0, 1, 2]}, "figures": {
        "rows": {"csd symmetric": {"sd_between": 0.010, "sd_teacher": 0.0},
                 "csd asymmetric": {"sd_between": 0.030, "sd_teacher": 0.025},
                 "pkt symmetric": {"sd_between": 0.020, "sd_teacher": 0.005},
                 "no_distill symmetric": {"sd_between": 0.0, "sd_teacher": 0.0}},
        "differences": {"csd symmetric vs no_distill": {"sd_between": 0.02, "kind": "vs no_distill", "survives": True,
                                                        "same_sign": True},
                        "pkt symmetric vs no_distill": {"sd_between": 0.04, "kind": "vs no_distill", "survives": False,
                                                        "same_sign": False},
                        "csd asymmetric vs t whitened": {"sd_between": 0.005, "kind": "vs whitened teacher",
                                                         "survives": False, "same_sign": True}}}}
    comparison = {"pooled": {"symmetric": {"mAP": {"sd": 0.03, "seeds": 3}}, "asymmetric": {"mAP": {"sd": 0.012, "seeds": 3}}},
                  "comparisons": {name: {"family": "reference", "marked": name != "csd asymmetric vs t whitened"}
                                  for name in share["figures"]["differences"]}}
    note = teacher_share_note(share, comparison)
    assert "refitting the teachers with 3 seeds (0, 1, 2)" in note
    # the three rows that move: median 0.020 of 0.010, 0.020, 0.030; no_distill does not move
    assert "moves the 3 rows that learn from them by an SD between teacher seeds of 0.020 (median; 0.010 to 0.030)" in note
    assert "s_pooled / √n (symmetric 0.017; asymmetric 0.007)" in note  # 0.03 / √3, 0.012 / √3
    assert "is 0 for 1 rows and largest for csd asymmetric (0.025)" in note
    assert "differences vs no_distill: median 0.030, up to 0.040" in note
    assert "differences vs whitened teacher: median 0.005, up to 0.005" in note
    assert "Of the 2 marked differences, 1 keep their sign under every teacher seed and 1 have a" in note
    assert note.rstrip().endswith("excludes 0: csd symmetric vs no_distill.")
