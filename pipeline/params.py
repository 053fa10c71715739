"""Typed schema of params.yaml: every section validated up front, errors name the key path."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, model_validator

from pipeline.errors import RdistillError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SOURCES_NEEDING_ROOT = ("folder", "mnist", "revisited", "gldv2", "sop", "inshop", "reid")


class SourceParams(Section):
    source: Literal["sklearn_digits", "list", "folder", "mnist", "revisited", "gldv2", "sop", "inshop",
                    "reid"] = "sklearn_digits"
    root: str | None = None  # the dataset's folder, for every importer
    list: str | None = None  # source=list: your CSV (path,label,split[,camera][,bbox]); gldv2: train.csv
    name: str | None = None  # revisited: roxford5k or rparis6k (reads gnd_<name>.pkl)
    n_train: PositiveInt = 1000  # sklearn_digits: images in the training split, the rest is `test`
    train_fraction: float = Field(0.5, gt=0, lt=1)  # folder: stratified share of each class in train
    limit: PositiveInt | None = None  # sklearn_digits, mnist: keep only the first `limit` images per file

    @model_validator(mode="after")
    def _source_has_its_inputs(self) -> "SourceParams":
        if self.source in SOURCES_NEEDING_ROOT and not self.root:
            raise ValueError(f"root: required with source {self.source!r}")
        if self.source in ("list", "gldv2") and not self.list:
            raise ValueError(f"list: required with source {self.source!r}")
        if self.source == "revisited" and not self.name:
            raise ValueError("name: required with source 'revisited' (e.g. roxford5k)")
        return self


class PrepareParams(SourceParams):
    train_from: SourceParams | None = None  # a second source whose `train` rows are appended (e.g. GLDv2 for rOxford)
    check_images: bool = True  # decode every image once, so that bad files are found before any stage
    on_bad_image: Literal["fail", "skip"] = "fail"  # skip: leave them out, listed in data/prepared/skipped.csv


class TeacherSpec(Section):
    arch: str
    weights: str = "train"  # a state_dict path, a torchvision weights name (local cache only), or `train`
    dim: PositiveInt | None = None  # optional linear layer after GeM
    image_size: PositiveInt = 32  # longer image side fed to the network


class TeacherParams(Section):
    epochs: PositiveInt = 6
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 1e-3
    weight_decay: float = Field(1e-6, ge=0)
    temperature: PositiveFloat = 0.05
    workers: int = Field(0, ge=0)


class ExtractParams(Section):
    scales: list[PositiveFloat] = [1.0, 0.7071, 0.5]
    batch_size: PositiveInt = 128
    chunk_size: PositiveInt = 512  # rows per HDF5 chunk and per resumable unit; a multiple of batch_size
    workers: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _chunks_hold_whole_batches(self) -> "ExtractParams":
        if self.chunk_size % self.batch_size:
            raise ValueError(f"chunk_size: {self.chunk_size} is not a multiple of batch_size {self.batch_size}")
        return self


class WhitenParams(Section):
    n_components: PositiveInt = 32
    power: PositiveFloat = 0.5


class MineParams(Section):
    index: str = "PQ8x4"
    k: PositiveInt = 64
    shortlist: int = Field(0, ge=0)  # > k: the index proposes this many candidates, re-ranked exactly
    batch_size: PositiveInt = 4096


class StudentArch(Section):
    arch: str = "resnet18"
    image_size: PositiveInt = 32


class CSDParams(Section):
    k: PositiveInt = 64
    tau_g: PositiveFloat = 0.01
    tau_q: PositiveFloat = 1.0
    variant: Literal["kl", "l1", "l2"] = "kl"


class NoDistillParams(Section):
    temperature: PositiveFloat = 0.05


class D3stillParams(Section):
    k: int = Field(10, ge=2)  # list length per sample, self included
    m: PositiveFloat = 0.1
    alpha: float = Field(100.0, ge=0)
    beta: float = Field(5.0, ge=0)
    gamma: float = Field(1.0, ge=0)
    supervised_weight: float = Field(1.0, ge=0)  # the student's own normalised-softmax loss when labels exist
    temperature: PositiveFloat = 0.05


class RelationalParams(Section):
    weight: PositiveFloat = 1.0


class SecondOrderParams(Section):
    lambda_1: float = Field(1.0, ge=0)
    lambda_2: float = Field(1.0, ge=0)


class MixupAPParams(Section):
    rounds: PositiveInt = 10
    alpha: PositiveFloat = 1.0  # λ ~ Beta(α, α)
    tau: float = Field(0.75, gt=-1, lt=1)  # similarity labelling threshold on the teacher
    n_bins: int = Field(25, ge=3)


class TrainParams(Section):
    student: StudentArch = StudentArch()
    epochs: PositiveInt = 15
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 1e-3
    weight_decay: float = Field(1e-6, ge=0)
    workers: int = Field(0, ge=0)
    csd: CSDParams = CSDParams()
    no_distill: NoDistillParams = NoDistillParams()
    d3still: D3stillParams = D3stillParams()
    fitnet: RelationalParams = RelationalParams()
    pair: RelationalParams = RelationalParams()
    second_order: SecondOrderParams = SecondOrderParams()
    rkd: RelationalParams = RelationalParams()
    pkt: RelationalParams = RelationalParams()
    mixup_ap: MixupAPParams = MixupAPParams()


class StudentSpec(Section):
    method: Literal["csd", "no_distill", "d3still", "fitnet", "pair", "second_order", "rkd", "pkt", "mixup_ap"]
    teacher: str  # the teacher whose whitened space the student is trained into


class EvaluateParams(Section):
    scales: list[PositiveFloat] = [1.0]
    recall_at: list[PositiveInt] = [1, 5, 10]
    batch_size: PositiveInt = 256
    grid_queries: int = Field(6, ge=0)  # queries shown in the retrieval grid (0: no grid)


class Params(Section):
    seed: int = 0
    prepare: PrepareParams = PrepareParams()
    teachers: dict[str, TeacherSpec]
    teacher: TeacherParams = TeacherParams()
    extract: ExtractParams = ExtractParams()
    whiten: WhitenParams = WhitenParams()
    mine: MineParams = MineParams()
    train: TrainParams = TrainParams()
    students: dict[str, StudentSpec] = {}
    evaluate: EvaluateParams = EvaluateParams()

    @model_validator(mode="after")
    def _students_name_known_teachers(self) -> "Params":
        for name, spec in self.students.items():
            if spec.teacher not in self.teachers:
                raise ValueError(f"students.{name}.teacher: unknown teacher {spec.teacher!r} "
                                 f"(declared: {', '.join(self.teachers)})")
        if self.train.csd.k > self.mine.k:
            raise ValueError(f"train.csd.k: {self.train.csd.k} exceeds the {self.mine.k} neighbours mined (mine.k)")
        return self


def _one_line(err: ValidationError, source: Path) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
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
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        raise RdistillError(_one_line(exc, path)) from None
