"""Typed schema of params.yaml: every section validated up front, errors name the key path."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, field_validator,
                      model_validator)

from pipeline.errors import RdistillError
from pipeline.local_paths import with_local_paths
from pipeline.methods import SEVERAL_TEACHERS, SINGLE_TEACHER


class Section(BaseModel):
    # Each field's docstring is its description, printed by `rdistill params`.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


SOURCES_NEEDING_ROOT = ("folder", "mnist", "revisited", "gldv2", "sop", "inshop", "reid")


class SourceParams(Section):
    source: Literal["sklearn_digits", "list", "folder", "mnist", "revisited", "gldv2", "sop", "inshop",
                    "reid"] = "sklearn_digits"
    """sklearn_digits (the demo) | list | folder | mnist | revisited | gldv2 | sop | inshop | reid"""
    root: str | None = None
    """the dataset's folder, for every importer"""
    list: str | None = None
    """source=list: your CSV (path,label,split[,camera][,bbox]); gldv2: train.csv"""
    name: str | None = None
    """revisited: roxford5k or rparis6k (reads gnd_<name>.pkl)"""
    n_train: PositiveInt = 1000
    """sklearn_digits: images in the training split, the rest is `test`"""
    train_fraction: float = Field(0.5, gt=0, lt=1)
    """folder: stratified share of each class in train"""
    limit: PositiveInt | None = None
    """sklearn_digits, mnist: keep only the first `limit` images per file"""

    @model_validator(mode="after")
    def _source_has_its_inputs(self) -> "SourceParams":
        if self.source in SOURCES_NEEDING_ROOT and not self.root:
            raise ValueError(f"root: required with source {self.source!r}")
        if self.source in ("list", "gldv2") and not self.list:
            raise ValueError(f"list: required with source {self.source!r}")
        if self.source == "revisited" and not self.name:
            raise ValueError("name: required with source 'revisited' (e.g. roxford5k)")
        return self


class DistractorParams(Section):
    list: str
    """a text file of image paths, one per line (R1M: revisitop1m.txt; bare names get .jpg)"""
    root: str | None = None
    """the folder those paths are relative to (default: the list's folder)"""


class PrepareParams(SourceParams):
    train_from: SourceParams | None = None
    """a second source whose `train` rows are appended (e.g. GLDv2 for rOxford)"""
    gallery_from: DistractorParams | None = None
    """distractor images appended to the gallery (e.g. R1M)"""
    validation: float = Field(0, ge=0)
    """training images held out for validation (never trained on, scored beside the test): a count (≥ 1) or a
    share (< 1); held-out images of the training classes when the test shares them, else held-out classes"""
    check_images: bool = True
    """decode every image once, so that bad files are found before any stage"""
    on_bad_image: Literal["fail", "skip"] = "fail"
    """skip: leave them out, listed in data/prepared/skipped.csv"""


Pool = Literal["gem", "token", "model"]


class TeacherSpec(Section):
    arch: str
    """a torchvision classification model name, or timm/<name>"""
    weights: str = "train"
    """a state_dict (.pt, .safetensors) path, a torchvision weights name or (timm) `pretrained` from the local
    caches, or `train` (fitted by the teacher stage)"""
    pool: Pool = "gem"
    """gem | token (a timm transformer's CLS token) | model (the timm model's own pooling)"""
    features: str | None = None
    """features computed elsewhere (HDF5 in rdistill's layout, or .npy): imported by id in place of
    extraction; arch then only names the teacher"""
    ids: str | None = None
    """with a .npy: a text file of its ids, one per line, in the array's order"""
    dim: PositiveInt | None = None
    """optional linear layer after GeM"""
    image_size: PositiveInt = 512
    """longer image side fed to the network (real photos: 512 to 1024; the digits demo: 32)"""
    init: str = "none"
    """weights: train only: the weights fitting starts from (D3still's gallery network: ImageNet ResNet-101),
    in the forms train.student.init takes; none: random"""


class TeacherParams(Section):
    """Fitting teachers declared with `weights: train` (normalised softmax on the training labels)."""

    epochs: PositiveInt = 6
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 1e-3
    """Adam's learning rate"""
    weight_decay: float = Field(1e-6, ge=0)
    temperature: PositiveFloat = 0.05
    """cosine-logit temperature"""
    eval_every: int = Field(0, ge=0)
    """validation mAP (one scale) logged every this many epochs (0: of the final teacher only)"""
    seed: int | None = None
    """the seed of the teachers' fitting: initial weights, batch order (null: `seed`). Every result is conditional
    on the teachers; `python -m benchmarks.teacher_seeds` retrains them with other seeds to measure how much"""


class ExtractParams(Section):
    scales: list[PositiveFloat] = [1.0, 0.7071, 0.5]
    """image scales whose GeM descriptors are averaged (GeM, Radenović et al., TPAMI 2018: 1, 1/√2, 1/2)"""
    views: PositiveInt = 1
    """V: seeded augmented views cached per training image (view 0 = no augmentation)"""
    batch_size: PositiveInt = 128
    """images per forward pass"""
    chunk_size: PositiveInt = 512
    """rows per HDF5 chunk and per resumable unit; a multiple of batch_size"""

    @model_validator(mode="after")
    def _chunks_hold_whole_batches(self) -> "ExtractParams":
        if self.chunk_size % self.batch_size:
            raise ValueError(f"chunk_size: {self.chunk_size} is not a multiple of batch_size {self.batch_size}")
        return self


class VerifyParams(Section):
    sample: PositiveInt = 64
    """items recomputed per teacher: half augmented views when the features hold views"""
    min_cosine: float = Field(0.999, ge=-1, le=1)
    """below this, a cached item is not what this machine computes"""
    worst: PositiveInt = 5
    """items listed, lowest cosine first"""


class WhitenParams(Section):
    n_components: PositiveInt = 512
    """n_c, the whitened dimension, the same for every teacher (Whiten-MTD: 512)"""
    power: PositiveFloat = 0.5
    """eigenvalue power: 0.5 plain whitening; 0.25 square-rooted PCA (more robust with few images)"""


class MineParams(Section):
    index: str = "auto"
    """a FAISS factory string; exact: torch's blocked top-K (on the GPU when there is one, no faiss-gpu needed);
    auto: exact on a GPU that FAISS cannot use, else FAISS exact search below EXACT_BELOW rows, IVF above"""
    k: PositiveInt = 64
    """neighbours mined per training image (itself excluded)"""
    shortlist: int = Field(256, ge=0)
    """> k: the index proposes this many candidates, re-ranked exactly from the features (0: the index's own
    ranking; unused with exact search)"""
    nprobe: PositiveInt | Literal["auto"] = "auto"
    """IVF indexes: lists visited per query; auto: one list in 8, within [16, 128]"""
    refine: int = Field(8, ge=0)
    """> 0: each row's K neighbours joined with the K of its `refine` nearest and re-ranked exactly (one round
    of NN-descent); unused with exact search"""
    batch_size: PositiveInt = 1024
    """queries per search call: bounds the re-rank's and PQ tables' memory"""


class StudentArch(Section):
    arch: str = "resnet18"
    """any torchvision classification model name, or timm/<name> (D3still: ResNet-18, MobileNetV2)"""
    image_size: PositiveInt = 256
    """the student's (query) input size; may be lower than the teacher's (D3still: a quarter of it)"""
    pool: Pool = "gem"
    """gem | token | model (timm models), as for teachers"""
    last_stride: Literal[1, 2] = 2
    """1: the last downsampling removed, a final map twice as large (D3still)"""
    random_erasing: float = Field(0.0, ge=0, lt=1)
    """probability of erasing a random box of a training input (D3still: 0.5)"""
    init: str = "none"
    """the weights it starts from: none (random) | a torchvision weights name (ResNet18_Weights.IMAGENET1K_V1) or
    `pretrained` (timm), from the local caches only | a checkpoint file (.pt, .pth, .safetensors: torchvision,
    timm, cirtorch or EfficientNet-PyTorch layouts, wrappers unwrapped); its classifier is left out and the
    embedding layer is new, initialised from the training seed"""


Share = Annotated[float, Field(gt=0, le=1)]  # a share of training, in (0, 1]


Supervision = Literal["normalised_softmax", "ce_triplet"]


class Recipe(Section):
    """A training recipe: optimiser, schedule, batch size, epochs (each paper's training section)."""

    optimizer: Literal["adam", "sgd"] = "adam"
    """adam | sgd"""
    lr: PositiveFloat = 1e-3
    momentum: float = Field(0.9, ge=0, lt=1)
    """sgd only"""
    weight_decay: float = Field(1e-6, ge=0)
    schedule: Literal["cosine", "linear", "exp", "constant"] = "cosine"
    """decay after warm-up; exp: × e^(−0.01·epoch)"""
    warmup: float = Field(0.0, ge=0, lt=1)
    """share of training with lr rising linearly from lr/10"""
    batch_size: PositiveInt = 64
    """images per step (pair methods: pairs per step)"""
    epochs: PositiveInt = 10
    average: list[Share] = []
    """average the weights of the epochs at these shares of training, e.g. [0.667, 1.0]"""
    supervised_weight: float = Field(0.0, ge=0)
    """the student's own supervised loss, added when labels exist"""
    supervised: Supervision = "normalised_softmax"
    """or ce_triplet: cross-entropy + batch-hard triplet (D3still)"""
    triplet_margin: PositiveFloat = 0.3
    """ce_triplet's margin (Euclidean, on the student's unit features)"""


class RecipeOverride(Section):
    """Any subset of a recipe's fields, laid over it."""

    optimizer: Literal["adam", "sgd"] | None = None
    lr: PositiveFloat | None = None
    momentum: float | None = Field(None, ge=0, lt=1)
    weight_decay: float | None = Field(None, ge=0)
    schedule: Literal["cosine", "linear", "exp", "constant"] | None = None
    warmup: float | None = Field(None, ge=0, lt=1)
    batch_size: PositiveInt | None = None
    epochs: PositiveInt | None = None
    average: list[Share] | None = None
    supervised_weight: float | None = Field(None, ge=0)
    supervised: Supervision | None = None
    triplet_margin: PositiveFloat | None = None

    def over(self, recipe: Recipe) -> Recipe:
        """`recipe` with this override's set fields replacing its own."""
        return Recipe.model_validate({**recipe.model_dump(), **self.model_dump(exclude_none=True)})


# Each paper's training recipe (each paper's training section), the default of its methods' `recipe`.
CSD_RECIPE = RecipeOverride(optimizer="adam", lr=1e-3, weight_decay=1e-6, schedule="linear", batch_size=128, epochs=10)
D3STILL_RECIPE = RecipeOverride(optimizer="sgd", lr=1e-2, momentum=0.9, weight_decay=5e-4, schedule="cosine",
                                warmup=10 / 120, batch_size=512, epochs=120, supervised_weight=1.0,
                                supervised="ce_triplet")
WHITEN_MTD_RECIPE = RecipeOverride(optimizer="adam", lr=1e-3, weight_decay=1e-6, schedule="cosine", batch_size=256)
MIXUP_AP_RECIPE = RecipeOverride(optimizer="adam", lr=1e-4, weight_decay=1e-6, schedule="exp", batch_size=1000,
                                 epochs=30, average=[2 / 3, 1.0])


class CSDParams(Section):
    """Contextual Similarity Distillation over [self, K mined neighbours] (CSD)."""

    recipe: RecipeOverride = CSD_RECIPE
    """the method's paper recipe (its paper's training section); the fields set here replace its own"""
    k: PositiveInt = 64
    """neighbours used (at most mine.k)"""
    tau_g: PositiveFloat = 0.01
    """kl only: teacher temperature"""
    tau_q: PositiveFloat = 1.0
    """kl only: student temperature"""
    variant: Literal["kl", "l1", "l2"] = "kl"
    """kl | l1 | l2 (Eq. 5)"""


class NoDistillParams(Section):
    """The reference: the same student on labels alone."""

    recipe: RecipeOverride = RecipeOverride()
    """changes to the base recipe (train.recipe)"""


class D3stillParams(Section):
    """D3still: alpha L_f + beta L_irpd + gamma L_crpd."""

    recipe: RecipeOverride = D3STILL_RECIPE
    """the method's paper recipe (its paper's training section); the fields set here replace its own"""
    k: int = Field(10, ge=2)
    """list length per sample, self included"""
    m: PositiveFloat = 0.1
    """constant in the pair terms' denominator"""
    alpha: float = Field(100.0, ge=0)
    beta: float = Field(5.0, ge=0)
    gamma: float = Field(1.0, ge=0)


class WhitenMTDParams(Section):
    """Whiten-MTD multi-teacher similarity distillation (Whiten-MTD)."""

    recipe: RecipeOverride = WHITEN_MTD_RECIPE
    """the method's paper recipe (its paper's training section); the fields set here replace its own"""
    fusion: Literal["mean", "rand", "max-min", "max-mean", "max-rand"] = "max-min"
    """how the teachers' similarities are fused: mean | rand | max-min | max-mean | max-rand"""
    tau_s: PositiveFloat = 0.05
    """student temperature"""
    tau_t: PositiveFloat = 0.05
    """teacher temperature"""
    both_directions: bool = True
    """add the same KL on the transposed similarity matrices"""
    teacher_target: bool = True
    """KL(teacher ‖ student); false: KL(student ‖ teacher)"""
    pairs: Literal["labels", "views", "neighbours"] = "labels"
    """where positive pairs come from"""


class ContrastiveParams(Section):
    """Whiten-MTD's Contrastive baseline (Q = identity)."""

    recipe: RecipeOverride = WHITEN_MTD_RECIPE
    """the method's paper recipe (its paper's training section); the fields set here replace its own"""
    tau_s: PositiveFloat = 0.05
    """student temperature"""
    both_directions: bool = True
    """add the same loss on the transposed similarity matrices"""
    pairs: Literal["labels", "views", "neighbours"] = "labels"
    """where positive pairs come from"""


class BaselineParams(Section):
    """A D3still-code baseline (the D3still code's baselines): a loss weight, trained with D3still's recipe."""

    recipe: RecipeOverride = D3STILL_RECIPE
    """the method's paper recipe (its paper's training section); the fields set here replace its own"""
    weight: PositiveFloat = 1.0
    """the loss's weight beside the supervised term"""


class EDParams(BaselineParams):
    """Embedding Distillation, a Whiten-MTD baseline trained with its recipe."""

    recipe: RecipeOverride = WHITEN_MTD_RECIPE
    """the method's paper recipe (its paper's training section); the fields set here replace its own"""


class SecondOrderParams(BaselineParams):
    """RAML-style pairwise + second-order similarity: weight · (first-order + λ₁ cross + λ₂ student-student)."""

    lambda_1: float = Field(1.0, ge=0)
    lambda_2: float = Field(1.0, ge=0)


class MixupAPParams(Section):
    """Data-efficient ranking distillation with mixup and an AP loss (mixup ranking distillation)."""

    recipe: RecipeOverride = MIXUP_AP_RECIPE
    """the method's paper recipe (its paper's training section); the fields set here replace its own"""
    rounds: PositiveInt = 10
    """mixup rounds R per batch"""
    alpha: PositiveFloat = 1.0
    """λ ~ Beta(α, α)"""
    tau: float = Field(0.75, gt=-1, lt=1)
    """similarity labelling threshold on the teacher"""
    n_bins: int = Field(25, ge=3)
    """the AP loss's soft bins C"""


class PKTParams(BaselineParams):
    """Probabilistic knowledge transfer: a mean over all n² entries is small, so the authors weight it 3e4."""

    weight: PositiveFloat = 3e4


class TrainParams(Section):
    """Shared by every student; each method's settings and recipe in its own sub-section."""

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is not None and len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds {seeds}: a seed is listed twice")
        return seeds

    preset: Literal["custom", "paper"] = "custom"
    """custom: the settings below | paper: every method's settings and recipe are its paper's (each paper's training
    section, the defaults), and students start from ImageNet weights (train.student.init none becomes the arch's
    torchvision default weights, or timm's `pretrained`, from the local caches); train.override and the changes
    under train.<method> are then not used (a student's own recipe is)"""
    student: StudentArch = StudentArch()
    """the student network, shared by every student"""
    sync_bn: bool = True
    """under torchrun on GPUs, BatchNorm as SyncBatchNorm (the global batch's statistics, as on one GPU); gloo on
    the CPU has none: each rank then normalises its own shard"""
    seeds: list[int] | None = Field(None, min_length=1)
    """training seeds: every student is trained once per seed, and the report's intervals come from them
    (default: [seed]); the first seed's student is the one exported, searched and shown in retrieval grids"""
    eval_every: int = Field(0, ge=0)
    """validation mAP (symmetric, evaluate.scales) logged every this many epochs (0: of the final student only;
    each costs a pass over the validation images)"""
    recipe: Recipe = Recipe()
    """the base every method's own `recipe` is laid over"""
    override: RecipeOverride = RecipeOverride()
    """laid over every method's recipe (e.g. short demo runs)"""
    temperature: PositiveFloat = 0.05
    """normalised-softmax temperature of every supervised term"""
    csd: CSDParams = CSDParams()
    no_distill: NoDistillParams = NoDistillParams()
    d3still: D3stillParams = D3stillParams()
    whiten_mtd: WhitenMTDParams = WhitenMTDParams()
    contrastive: ContrastiveParams = ContrastiveParams()
    ed: EDParams = EDParams()
    fitnet: BaselineParams = BaselineParams()
    pair: BaselineParams = BaselineParams()
    second_order: SecondOrderParams = SecondOrderParams()
    rkd: BaselineParams = BaselineParams()
    pkt: PKTParams = PKTParams()
    mixup_ap: MixupAPParams = MixupAPParams()


class StudentSpec(Section):
    method: Literal[SINGLE_TEACHER]
    """csd | d3still | fitnet | pair | second_order | rkd | pkt | mixup_ap | no_distill"""
    teacher: str
    """the teacher whose whitened space the student is trained into"""
    recipe: RecipeOverride = RecipeOverride()
    """this student's own changes to its method's recipe"""
    online: bool = False
    """the reference that measures what the cache costs: the student sees its plain image as often as from the
    cache (1 / extract.views) and otherwise a crop drawn afresh each time instead of one of the cached ones, and
    the teacher runs on those crops, whitened as its cached features are (plain images and CSD's neighbours keep
    their cached targets, which the teacher computes alike); 2 to 15x slower per epoch on a CPU"""

    @model_validator(mode="after")
    def _online_needs_a_teacher(self) -> StudentSpec:
        if self.online and self.method == "no_distill":
            raise ValueError("online: no_distill learns from labels alone, it has no teacher to run online")
        return self


class EnsembleStudentSpec(Section):
    method: Literal[SEVERAL_TEACHERS]
    """whiten_mtd | ed | contrastive"""
    teachers: list[str] | None = None
    """distilled together (null: every declared teacher)"""
    gallery: str | None = None
    """teacher of the asymmetric evaluation (null: the first of `teachers`)"""
    recipe: RecipeOverride = RecipeOverride()


class EvaluateParams(Section):
    scales: list[PositiveFloat] = [1.0]
    """the student's query and gallery extraction scales"""
    recall_at: list[PositiveInt] = [1, 5, 10]
    """k of the reported recall@k"""
    batch_size: PositiveInt = 256
    """images per forward pass"""
    grid_queries: int = Field(6, ge=0)
    """queries shown in the retrieval grid (0: no grid)"""


class RuntimeParams(Section):
    """How fast the stages run on this machine. Nothing here changes an output, so no stage depends on it:
    set it per machine in machine.yaml (never committed) or here."""

    workers: int = Field(0, ge=0)
    """DataLoader worker processes decoding images while the network runs (fitting teachers, extraction,
    verification, training): with a GPU, about one per core; on a CPU with as many cores as torch threads, 0"""
    image_cache_mb: float = Field(2048, ge=0)
    """decoded training inputs (teachers fitted here, students) kept in memory after the first epoch"""
    timeout_minutes: PositiveFloat = 120
    """under torchrun: how long the other ranks wait while rank 0 alone writes a shared file (e.g. a multi-GB
    target file) before the run fails; training collectives keep torch's 10 minutes"""


class ReportParams(Section):
    resamples: PositiveInt = 10_000
    """query resamples of the paired bootstrap behind the report's differences (seeded by `seed`)"""


class Params(Section):
    seed: int = 0
    """python, numpy and torch seeds; shuffling order; augmented views"""
    prepare: PrepareParams = PrepareParams()
    """the image list: its source, splits and checks"""
    teachers: dict[str, TeacherSpec]
    """name -> backbone + GeM (or its own pooling) + optional linear, l2-normalised"""
    teacher: TeacherParams = TeacherParams()
    extract: ExtractParams = ExtractParams()
    """multi-scale teacher features of every image, and the augmented views of training images"""
    verify: VerifyParams = VerifyParams()
    """recomputing a sample of cached features on this machine (after extract and after a dvc pull)"""
    whiten: WhitenParams = WhitenParams()
    """PCA-whitening learnt per teacher on the training split"""
    mine: MineParams = MineParams()
    """the FAISS index and the top-K neighbours of every training image"""
    train: TrainParams = TrainParams()
    students: dict[str, StudentSpec] = {}
    ensembles: dict[str, EnsembleStudentSpec] = {}
    """multi-teacher students"""
    evaluate: EvaluateParams = EvaluateParams()
    report: ReportParams = ReportParams()
    """the results table's intervals"""
    runtime: RuntimeParams = RuntimeParams()
    """this machine's workers, memory budget and waits: no output depends on them"""

    def teacher_seed(self) -> int:
        """The seed teachers are fitted with: teacher.seed, or `seed` when it is not given."""
        return self.teacher.seed if self.teacher.seed is not None else self.seed

    def training_seeds(self) -> list[int]:
        """The seeds every student is trained with: train.seeds, or [seed] when it is not given."""
        return self.train.seeds if self.train.seeds is not None else [self.seed]

    @model_validator(mode="after")
    def _students_name_known_teachers(self) -> "Params":
        named = [(f"students.{n}.teacher", s.teacher) for n, s in self.students.items()]
        for n, spec in self.ensembles.items():
            named += [(f"ensembles.{n}.teachers", t) for t in spec.teachers or []]
            named += [(f"ensembles.{n}.gallery", spec.gallery)] if spec.gallery else []
        for key, teacher in named:
            if teacher not in self.teachers:
                raise ValueError(f"{key}: unknown teacher {teacher!r} (declared: {', '.join(self.teachers)})")
        both = sorted(set(self.students) & set(self.ensembles))
        if both:
            raise ValueError(f"ensembles.{both[0]}: the name is already a student's")
        if self.train.csd.k > self.mine.k:
            raise ValueError(f"train.csd.k: {self.train.csd.k} exceeds the {self.mine.k} neighbours mined (mine.k)")
        return self


# Where settings that change no output used to be: named in the error, so that an older params.yaml is mended.
MOVED = {("teacher", "workers"): "runtime.workers", ("extract", "workers"): "runtime.workers",
         ("train", "workers"): "runtime.workers", ("teacher", "image_cache_mb"): "runtime.image_cache_mb",
         ("train", "image_cache_mb"): "runtime.image_cache_mb", ("distributed", "timeout_minutes"): "runtime.timeout_minutes"}


def moved_key(raw: dict) -> str | None:
    """The first key of `raw` that now lives under `runtime`, with its new name, or None."""
    for (section, key), new in MOVED.items():
        if isinstance(raw.get(section), dict) and key in raw[section]:
            return f"{section}.{key}: now {new} (it changes no output, so no stage depends on it)"
    return None


def method_settings(train: TrainParams, method: str) -> Section:
    """A method's settings: its train.<method> section, or under preset paper its paper's (the schema's defaults)."""
    return getattr(TrainParams() if train.preset == "paper" else train, method)


def recipe_of(train: TrainParams, method: str, own: RecipeOverride) -> Recipe:
    """The recipe a student trains with, each layer replacing only the fields it sets:
    train.recipe < the method's paper recipe < train.<method>.recipe < train.override < the student's own.
    Under preset paper: the paper recipe and the student's own changes only."""
    if train.preset == "paper":
        train = TrainParams()
    section = getattr(train, method)
    paper = type(section).model_fields["recipe"].default
    return own.over(train.override.over(section.recipe.over(paper.over(train.recipe))))


def ensemble_teachers(params: "Params", name: str) -> list[str]:
    """The teachers an ensemble student distils, in declaration order."""
    return params.ensembles[name].teachers or list(params.teachers)


def _one_line(err: ValidationError, source: Path) -> str:
    errors = err.errors()
    first = errors[0]
    loc, msg = first["loc"], first["msg"].removeprefix("Value error, ")
    # A value that fits no member of a union (e.g. a positive int or "auto") gets one error per member,
    # each located at the field plus the member's tag: name the field and every accepted form.
    members = [e for e in errors if len(e["loc"]) == len(loc) and e["loc"][:-1] == loc[:-1]]
    if len(members) > 1 and not str(loc[-1]).isidentifier():
        loc, msg = loc[:-1], ", or ".join(dict.fromkeys(e["msg"] for e in members))
    loc = ".".join(str(p) for p in loc)
    got = f" (got {first['input']!r})" if first["type"] not in ("missing", "value_error") else ""
    where = f"{loc}: " if loc else ""
    return f"{source}: {where}{msg}{got}"


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raise RdistillError naming the key path at fault."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RdistillError(f"{path}: parameter file not found") from None
    except yaml.YAMLError as exc:
        raise RdistillError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict | None):
        raise RdistillError(f"{path}: expected sections of `key: value` lines")
    if raw and moved_key(raw):
        raise RdistillError(f"{path}: {moved_key(raw)}")
    try:
        return Params.model_validate(with_local_paths(raw or {}, path))
    except ValidationError as exc:
        raise RdistillError(_one_line(exc, path)) from None
