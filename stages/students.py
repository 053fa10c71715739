"""The students declared in params.yaml (`students` and `ensembles`), resolved for the train and evaluate stages."""
from __future__ import annotations

from dataclasses import dataclass

from pipeline import layout
from pipeline.params import Params, Recipe, RecipeOverride, Section, ensemble_teachers, method_settings, recipe_of
from pipeline.train.online import OnlineTeacher, load_online_teacher
from stages.common import declared


@dataclass(frozen=True)
class Student:
    """A declared student, single- or multi-teacher, with its method's resolved settings and recipe."""

    name: str
    method: str
    teachers: list[str]  # distilled teachers (one but for ensembles)
    gallery: str  # the teacher of the asymmetric evaluation
    recipe: Recipe
    settings: Section  # the method's settings (train.<method>, or its paper's under preset paper)
    kind: str = "students"  # the params.yaml section declaring it: students | ensembles
    own: RecipeOverride = RecipeOverride()  # its own recipe changes (students.<name>.recipe)
    online: bool = False  # its teacher runs on every batch instead of the cached features (students.<name>.online)


def student(params: Params, name: str, params_path) -> Student:
    """The student `name` from `students` or `ensembles`; a clear error if neither declares it."""
    if name in params.ensembles:
        spec = params.ensembles[name]
        teachers = ensemble_teachers(params, name)
        return Student(name, spec.method, teachers, spec.gallery or teachers[0],
                       recipe_of(params.train, spec.method, spec.recipe), method_settings(params.train, spec.method),
                       "ensembles", spec.recipe)
    spec = declared({**params.students, **params.ensembles}, "students", name, params_path)
    return Student(name, spec.method, [spec.teacher], spec.teacher, recipe_of(params.train, spec.method, spec.recipe),
                   method_settings(params.train, spec.method), "students", spec.recipe, spec.online)


def online_teacher(params: Params, spec: Student, plain) -> OnlineTeacher | None:
    """An online student's teacher, run on every batch's crops: its network and whitening, the very files its
    cached features came from, at extract.scales, and `plain`, its cached (N, D) plain-image targets; None for
    a student trained from the cache."""
    if not spec.online:
        return None
    name = spec.teachers[0]
    return load_online_teacher(name, params.teachers[name], params.extract.scales, layout.teacher_weights(name),
                               layout.whitening(name), plain)


def target_settings(params: Params, spec: Student) -> dict:
    """Every setting the student's targets depend on besides the teachers' weights: how the features were
    extracted (scales, views), whitened and mined, and each teacher's declaration; a student trained earlier
    is reused only while they hold."""
    return {"extract": params.extract.model_dump(include={"scales", "views"}), "whiten": params.whiten.model_dump(),
            "mine": params.mine.model_dump(), "teachers": [params.teachers[t].model_dump() for t in spec.teachers]}
