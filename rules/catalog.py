"""Tag catalogs: YAML files that define dimensions, tags, their conditions and tasks.

A catalog is read from YAML node by node (not with ``yaml.safe_load``) so that every problem is
reported as ``file:line: message``, duplicate keys are refused, and all problems of a file are
reported at once rather than the first only. A catalog that loads is complete and consistent:
every condition compiles and type-checks, every tag it names exists, dimensions that refer to
each other form no cycle, and they are ordered so that a dimension is decided after those it
reads. Its version is a hash of the file's bytes, recorded with every change it causes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import tzinfo
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from rules.expr import Condition, Dimension, ExprError, compile_condition
from rules.facts import FACTS, WINDOWS, Elements, deadline_windows
from state.customer import CustomerState
from state.times import DEFAULT_TIMEZONE, parse_duration

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
ASSIGNEE_ROLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
OWNER = "owner"
"""Assignee meaning: the profile's owner rep, else the latest follow-up's rep, else unassigned."""


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class CatalogError(Exception):
    """A catalog that cannot be used, with every problem found in it."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class TaskRule:
    title: dict[str, str]  # language -> title
    assignee: str  # OWNER or a role such as "sales-director"
    due: int  # microseconds after the change's effective time
    kind: str


@dataclass(frozen=True, slots=True)
class TagRule:
    name: str
    dimension: str
    label: dict[str, str]
    definition: dict[str, str]
    condition: Condition
    tasks: tuple[TaskRule, ...]
    line: int
    # Microseconds a customer holds the tag at most after entering it; None: as long as it holds.
    valid_for: int | None = None

    @property
    def rule_id(self) -> str:
        return f"{self.dimension}.{self.name}"


@dataclass(frozen=True, slots=True)
class DimensionRule:
    name: str
    exclusive: bool
    label: dict[str, str]
    tags: tuple[TagRule, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Catalog:
    name: str
    version: str
    languages: tuple[str, ...]
    dimensions: tuple[DimensionRule, ...]  # in evaluation order: a dimension after those it reads
    source: str
    tags: dict[str, TagRule] = field(default_factory=dict)
    ages: frozenset[tuple[str, int]] = frozenset()
    windows: frozenset[tuple[str, int]] = frozenset()
    # Per kind of event, the dimensions whose tags such an event can move (see ``moved_by``).
    moved_by: dict[type, frozenset[str]] = field(default_factory=dict)
    # The tags with a validity period, and its length: most catalogs have none, and then the
    # engine skips that part of its work (rules/engine.py).
    valid_for: dict[str, int] = field(default_factory=dict)
    # Where facts of the calendar are read (``timezone:``), and the values of each calendar fact at
    # whose start a condition can flip (None: every change), for the engine's deadlines.
    timezone: str = DEFAULT_TIMEZONE
    calendar: dict[str, frozenset[int] | None] = field(default_factory=dict)
    # Derived from the fields above when the catalog is made (and remade by dataclasses.replace),
    # so the engine does not work them out again for every event: the durations of ``ages`` per
    # time fact (its getter), shortest first, and the windows grouped as ``deadline_windows`` says.
    deadline_ages: tuple[tuple[Callable[[CustomerState], object], tuple[int, ...]], ...] = field(init=False)
    deadline_windows: tuple[tuple[Elements, tuple[int, ...]], ...] = field(init=False)
    dimension_names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        durations: dict[str, list[int]] = {}
        for fact, duration in self.ages:
            durations.setdefault(fact, []).append(duration)
        by_fact = tuple((FACTS[fact].get, tuple(sorted(found))) for fact, found in sorted(durations.items()))
        object.__setattr__(self, "deadline_ages", by_fact)  # a frozen dataclass: set once, here
        object.__setattr__(self, "deadline_windows", deadline_windows(self.windows))
        object.__setattr__(self, "dimension_names", frozenset(d.name for d in self.dimensions))

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.timezone)  # ZoneInfo keeps one instance per key: no cost after the first

    @property
    def language(self) -> str:
        """The language of task titles and of text shown when none is asked for."""
        return self.languages[0]


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def moved_by(dimensions: list[DimensionRule]) -> dict[type, frozenset[str]]:
    """For each kind of event, the dimensions an event of that kind can move: those with a tag
    whose condition reads a fact or window the event can change, and those that read such a
    dimension. The others keep the tags they were last decided, until a deadline (which
    re-decides everything): between deadlines no age or window comparison flips."""
    kinds = {kind for fact in FACTS.values() for kind in fact.changed_by}
    kinds |= {kind for window in WINDOWS.values() for kind in window.changed_by}
    result = {}
    for kind in kinds:
        moved: set[str] = set()
        for dimension in dimensions:  # in evaluation order: what it reads comes first
            for tag in dimension.tags:
                condition = tag.condition
                if (
                    any(kind in FACTS[fact].changed_by for fact in condition.facts)
                    or any(kind in WINDOWS[name].changed_by for name, _ in condition.windows)
                    or condition.dimensions & moved
                ):
                    moved.add(dimension.name)
        result[kind] = frozenset(moved)
    return result


def calendar_values(tags: Iterable[TagRule]) -> dict[str, frozenset[int] | None]:
    """Per calendar fact the catalog reads, the values at whose start a condition can flip; None
    when some condition may see any change of it."""
    found: dict[str, set[int] | None] = {}
    for tag in tags:
        for fact, value in tag.condition.calendar:
            values = found.setdefault(fact, set())
            if value is None:
                found[fact] = None
            elif values is not None:
                values.add(value)
    return {fact: None if values is None else frozenset(values) for fact, values in found.items()}


def load_catalog(path: str | Path) -> Catalog:
    """Read and validate a catalog file. Raises CatalogError listing every problem."""
    data = Path(path).read_bytes()
    return parse_catalog(data, str(path))


def default_catalog_path() -> Path:
    return Path(str(resources.files("rules") / "default_catalog.yaml"))


def load_default_catalog() -> Catalog:
    return load_catalog(default_catalog_path())


def parse_catalog(data: bytes, source: str = "<catalog>") -> Catalog:
    """Validate catalog YAML given as bytes; ``source`` names it in error messages."""
    reader = _Reader(source)
    try:
        text = data.decode("utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except UnicodeDecodeError as exc:
        raise CatalogError([Problem(source, 1, f"not UTF-8 text: {exc}")]) from exc
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise CatalogError([Problem(source, line, f"invalid YAML: {exc.problem}")]) from exc
    catalog = reader.catalog(root, hashlib.sha256(data).hexdigest()[:16])
    if reader.problems or catalog is None:
        raise CatalogError(sorted(reader.problems, key=lambda p: p.line))
    return catalog


class _Reader:
    """Walks the YAML node tree, collecting problems instead of stopping at the first."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.languages: tuple[str, ...] = ("en",)
        self.timezone = DEFAULT_TIMEZONE
        # A block mapping starts at its first key, a line below its own name: problems of a
        # dimension or a tag as a whole are reported on the line of its name.
        self.key_lines: dict[int, int] = {}

    def line(self, node: yaml.Node) -> int:
        return self.key_lines.get(id(node), node.start_mark.line + 1)

    def problem(self, node: yaml.Node | None, message: str, extra_lines: int = 0) -> None:
        line = self.line(node) + extra_lines if node is not None else 1
        self.problems.append(Problem(self.source, line, message))

    # -- generic node helpers --

    def mapping(self, node: yaml.Node | None, what: str, allowed: set[str]) -> dict[str, Any]:
        """A YAML mapping as {key: value node}; unknown or duplicate keys are problems."""
        if node is None:
            return {}  # a missing key: required() has reported it, on its parent's line
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what} must be a mapping")
            return {}
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.problem(key_node, f"{what}: keys must be names")
            elif key in result:
                self.problem(key_node, f"{what}: {key!r} is given twice")
            elif allowed and key not in allowed:
                self.problem(key_node, f"{what}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
            else:
                result[key] = value_node
                if isinstance(value_node, yaml.MappingNode):
                    self.key_lines[id(value_node)] = key_node.start_mark.line + 1
        return result

    def scalar(self, node: yaml.Node | None, what: str) -> str | None:
        if node is None:
            return None  # a missing key: required() has reported it, on its parent's line
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.problem(node, f"{what} must be a single value")
            return None
        return str(node.value)

    def required(self, fields: dict[str, Any], key: str, parent: yaml.Node, what: str) -> Any:
        if key not in fields:
            self.problem(parent, f"{what}: {key!r} is required")
        return fields.get(key)

    def texts(self, node: yaml.Node | None, what: str) -> dict[str, str]:
        """A text in every language of the catalog: {en: ..., zh: ...}."""
        fields = self.mapping(node, what, set())
        if isinstance(node, yaml.MappingNode) and node.flow_style and any(_is_null(v) for v in fields.values()):
            # {en: Has no email, but a phone} reads as two entries, the second with no text.
            self.problem(node, f"{what}: in {{...}} a comma separates entries; put a text that contains a comma "
                         'in quotes, e.g. en: "Has no email, but a phone"')
            return {lang: value.value for lang, value in fields.items() if not _is_null(value)}
        result = {lang: self.scalar(value, f"{what}.{lang}") or "" for lang, value in fields.items()}
        missing = [lang for lang in self.languages if lang not in result]
        if node is not None and fields and missing:
            self.problem(node, f"{what}: missing language(s) {', '.join(missing)}")
        return result

    # -- the catalog --

    def catalog(self, root: yaml.Node | None, version: str) -> Catalog | None:
        top = self.mapping(root, "catalog", {"catalog", "languages", "timezone", "dimensions"})
        if root is None or not top:
            if not self.problems:
                self.problem(root, "the catalog is empty")
            return None
        name = self.scalar(self.required(top, "catalog", root, "catalog"), "catalog") or "catalog"
        self.languages = self.language_list(top.get("languages"))
        self.timezone = self.zone_name(top.get("timezone"))
        dims_node = self.required(top, "dimensions", root, "catalog")
        raw_dimensions = self.mapping(dims_node, "dimensions", set())
        if isinstance(dims_node, yaml.MappingNode) and not raw_dimensions:
            self.problem(dims_node, "the catalog has no dimensions: switching to it would take every tag from "
                         "every customer")
        shapes = self.dimension_shapes(raw_dimensions)
        dimensions = [
            dimension
            for dim_name, node in raw_dimensions.items()
            if (dimension := self.dimension(dim_name, node, shapes)) is not None
        ]
        ordered = self.evaluation_order(dimensions)
        tags = {tag.name: tag for dimension in ordered for tag in dimension.tags}
        ages = frozenset(a for t in tags.values() for a in t.condition.ages)
        windows = frozenset(w for t in tags.values() for w in t.condition.windows)
        return Catalog(name, version, self.languages, tuple(ordered), self.source, tags, ages, windows,
                       moved_by(ordered), {t.name: t.valid_for for t in tags.values() if t.valid_for is not None},
                       self.timezone, calendar_values(tags.values()))

    def zone_name(self, node: yaml.Node | None) -> str:
        """``timezone: Asia/Shanghai``: an IANA zone name, checked against the zone database."""
        if node is None:
            return DEFAULT_TIMEZONE
        name = self.scalar(node, "timezone")
        if name is None:
            return DEFAULT_TIMEZONE
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.problem(node, f"timezone: unknown time zone {name!r} (an IANA name such as Asia/Shanghai or UTC)")
            return DEFAULT_TIMEZONE
        return name

    def language_list(self, node: yaml.Node | None) -> tuple[str, ...]:
        if node is None:
            return ("en",)
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.problem(node, "languages must be a list such as [en, zh]")
            return ("en",)
        languages = tuple(str(item.value) for item in node.value if isinstance(item, yaml.ScalarNode))
        return languages or ("en",)

    def dimension_shapes(self, raw: dict[str, Any]) -> dict[str, Dimension]:
        """First pass: each dimension's tags, so that conditions can refer to any dimension."""
        shapes: dict[str, Dimension] = {}
        seen_tags: dict[str, str] = {}
        for dim_name, node in raw.items():
            fields = node.value if isinstance(node, yaml.MappingNode) else []
            exclusive = True
            tag_names: list[str] = []
            for key, value in fields:
                if key.value == "exclusive" and isinstance(value, yaml.ScalarNode):
                    exclusive = value.value not in ("false", "False", "no")
                if key.value == "tags" and isinstance(value, yaml.MappingNode):
                    tag_names = [str(k.value) for k, _ in value.value]
                    for tag_key, _ in value.value:
                        other = seen_tags.setdefault(str(tag_key.value), dim_name)
                        if other != dim_name:
                            self.problem(
                                tag_key,
                                f"tag {tag_key.value!r} is already defined in dimension {other!r}; "
                                "tag names must be unique across the catalog",
                            )
            shapes[dim_name] = Dimension(exclusive, frozenset(tag_names))
        return shapes

    def dimension(self, name: str, node: yaml.Node, shapes: dict[str, Dimension]) -> DimensionRule | None:
        what = f"dimension {name!r}"
        if not IDENTIFIER.match(name):
            self.problem(node, f"{what}: names are lower-case letters, digits and _")
        fields = self.mapping(node, what, {"exclusive", "name", "tags"})
        exclusive_node = self.required(fields, "exclusive", node, what)
        exclusive = self.scalar(exclusive_node, f"{what}.exclusive")
        if exclusive is not None and exclusive not in ("true", "false"):
            self.problem(exclusive_node, f"{what}.exclusive must be true or false")
        label = self.texts(self.required(fields, "name", node, what), f"{what}.name")
        tags_node = self.required(fields, "tags", node, what)
        raw_tags = self.mapping(tags_node, f"{what}.tags", set())
        if tags_node is not None and not raw_tags:
            self.problem(tags_node, f"{what} has no tags")
        tags = [
            tag
            for tag_name, tag_node in raw_tags.items()
            if (tag := self.tag(name, tag_name, tag_node, shapes)) is not None
        ]
        return DimensionRule(name, exclusive == "true", label, tuple(tags), self.line(node))

    def tag(self, dimension: str, name: str, node: yaml.Node, shapes: dict[str, Dimension]) -> TagRule | None:
        what = f"tag {name!r}"
        if not IDENTIFIER.match(name):
            self.problem(node, f"{what}: names are lower-case letters, digits and _")
        fields = self.mapping(node, what, {"name", "definition", "when", "tasks", "valid_for"})
        label = self.texts(self.required(fields, "name", node, what), f"{what}.name")
        definition = self.texts(self.required(fields, "definition", node, what), f"{what}.definition")
        when_node = self.required(fields, "when", node, what)
        source = self.scalar(when_node, f"{what}.when")
        tasks = tuple(self.tasks(fields.get("tasks"), what))
        valid_for = self.validity(fields.get("valid_for"), what)
        if source is None:
            return None
        try:
            condition = compile_condition(source, shapes, ZoneInfo(self.timezone))
        except ExprError as exc:
            self.condition_problem(when_node, source, exc)
            return None
        if dimension in condition.dimensions:
            self.problem(when_node, f"{what}: a condition cannot read its own dimension {dimension!r}")
            return None
        return TagRule(name, dimension, label, definition, condition, tasks, self.line(node), valid_for)

    def condition_problem(self, node: yaml.Node, source: str, exc: ExprError) -> None:
        """Point at the line of the condition where the problem is, and show the spot."""
        extra = source.count("\n", 0, exc.offset) if getattr(node, "style", None) in ("|", ">") else 0
        if getattr(node, "style", None) in ("|", ">"):
            extra += 1  # block scalars start on the line after the indicator
        line_start = source.rfind("\n", 0, exc.offset) + 1
        line_end = source.find("\n", exc.offset)
        snippet = source[line_start : line_end if line_end >= 0 else len(source)]
        pointer = " " * (exc.offset - line_start) + "^"
        self.problem(node, f"in condition: {exc.message}\n    {snippet}\n    {pointer}", extra)

    def tasks(self, node: yaml.Node | None, what: str) -> list[TaskRule]:
        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{what}.tasks must be a list")
            return []
        result = []
        for item in node.value:
            fields = self.mapping(item, f"{what} task", {"title", "assignee", "due", "kind"})
            title = self.texts(self.required(fields, "title", item, f"{what} task"), f"{what} task title")
            assignee = self.scalar(self.required(fields, "assignee", item, f"{what} task"), "assignee")
            if assignee is not None and not ASSIGNEE_ROLE.match(assignee):
                self.problem(fields["assignee"], f"{what} task: assignee must be 'owner' or a role name")
            due = self.duration(fields.get("due"), f"{what} task due")
            kind = self.scalar(fields["kind"], "kind") if "kind" in fields else "follow_up"
            result.append(TaskRule(title, assignee or OWNER, due, kind or "follow_up"))
        return result

    def duration(self, node: yaml.Node | None, what: str) -> int:
        if node is None:
            return 0
        text = self.scalar(node, what)
        if text is None or text == "now":
            return 0
        try:
            return parse_duration(text)
        except ValueError as exc:
            self.problem(node, f"{what}: {exc}")
            return 0

    def validity(self, node: yaml.Node | None, what: str) -> int | None:
        """``valid_for``: a positive duration, or None when the tag does not declare one."""
        if node is None:
            return None
        text = self.scalar(node, f"{what}.valid_for")
        if text is None:
            return None
        try:
            valid_for = parse_duration(text)
        except ValueError as exc:
            self.problem(node, f"{what}.valid_for: {exc}")
            return None
        if valid_for <= 0:  # "0s", or a fraction below a microsecond: the tag could never be held
            self.problem(node, f"{what}.valid_for must be longer than zero, not {text!r}")
            return None
        return valid_for

    def evaluation_order(self, dimensions: list[DimensionRule]) -> list[DimensionRule]:
        """Dimensions ordered so that each comes after those its conditions read; cycles refused."""
        by_name = {d.name: d for d in dimensions}
        reads = {d.name: {r for t in d.tags for r in t.condition.dimensions} for d in dimensions}
        ordered: list[DimensionRule] = []
        state: dict[str, str] = {}  # name -> "visiting" | "done"

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == "done" or name not in by_name:
                return
            if state.get(name) == "visiting":
                cycle = [*path[path.index(name) :], name]
                message = "dimensions read each other in a cycle: " + " -> ".join(cycle)
                self.problems.append(Problem(self.source, by_name[name].line, message))
                return
            state[name] = "visiting"
            for other in sorted(reads[name]):
                visit(other, [*path, name])
            state[name] = "done"
            ordered.append(by_name[name])

        for dimension in dimensions:
            visit(dimension.name, [])
        return ordered
