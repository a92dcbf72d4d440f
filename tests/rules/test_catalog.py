"""Catalog files (SPEC section 5): the default catalog loads; every problem says file:line."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from rules.catalog import (
    Catalog,
    CatalogError,
    Problem,
    default_catalog_path,
    load_catalog,
    load_default_catalog,
    parse_catalog,
)
from state.times import DAY, HOUR

GOOD = dedent(
    """\
    catalog: small
    languages: [en, zh]
    dimensions:
      tier:
        exclusive: true
        name: {en: Tier, zh: 等级}
        tags:
          big:
            name: {en: Big, zh: 大}
            definition: {en: Big spender, zh: 大客户}
            when: spend(180d) > 1000
            tasks:
              - title: {en: Call, zh: 致电}
                assignee: owner
                due: 2d
          small:
            name: {en: Small, zh: 小}
            definition: {en: Small spender, zh: 小客户}
            when: paid_orders_total >= 1
      alerts:
        exclusive: false
        name: {en: Alerts, zh: 提醒}
        tags:
          quiet_big:
            name: {en: Quiet big, zh: 沉默大客户}
            definition: {en: Big and quiet, zh: 大且沉默}
            when: tier == "big" and age(last_activity) >= 30d
    """
)


def parse(text: str) -> Catalog:
    return parse_catalog(text.encode(), "x.yaml")


def problems(text: str) -> list[Problem]:
    with pytest.raises(CatalogError) as caught:
        parse(text)
    return caught.value.problems


def only_problem(text: str) -> Problem:
    (problem,) = problems(text)
    return problem


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``needle``."""
    found = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(found) >= occurrence, f"{needle!r} not in the catalog text"
    return found[occurrence - 1]


def edit(old: str, new: str, text: str = GOOD) -> str:
    assert old in text
    return text.replace(old, new, 1)


# --------------------------------------------------------------------------------------------
# catalogs that load


def test_the_default_catalog_loads() -> None:
    catalog = load_default_catalog()
    assert catalog.name == "default"
    assert catalog.languages == ("en", "zh")
    assert catalog.source == str(default_catalog_path())
    assert catalog.tags["high_value"].label == {"en": "High-value customer", "zh": "高价值客户"}
    assert catalog.tags["lead_unattended"].tasks[0].assignee == "sales-director"
    assert catalog.tags["lead_unattended"].tasks[0].due == 0
    assert catalog.tags["churn_warning"].tasks[0].due == 2 * DAY
    for tag in catalog.tags.values():
        assert set(tag.label) == {"en", "zh"}
        assert set(tag.definition) == {"en", "zh"}
        for task in tag.tasks:
            assert set(task.title) == {"en", "zh"}


def test_dimensions_are_ordered_after_the_dimensions_they_read() -> None:
    order = [d.name for d in load_default_catalog().dimensions]
    assert order.index("lifecycle") < order.index("risk")
    assert order.index("intent") < order.index("followup")
    reordered = parse(GOOD.replace("  tier:", "  zzz:").replace('tier == "big"', 'zzz == "big"'))
    assert [d.name for d in reordered.dimensions] == ["zzz", "alerts"]
    alerts_first = dedent(
        """\
        catalog: c
        dimensions:
          alerts:
            exclusive: false
            name: {en: Alerts}
            tags:
              quiet:
                name: {en: Q}
                definition: {en: Q}
                when: tier == "big"
          tier:
            exclusive: true
            name: {en: Tier}
            tags:
              big:
                name: {en: Big}
                definition: {en: Big}
                when: paid_orders_total > 3
        """
    )
    assert [d.name for d in parse(alerts_first).dimensions] == ["tier", "alerts"]


def test_a_small_catalog_loads_with_its_tags_and_tasks() -> None:
    catalog = parse(GOOD)
    assert catalog.name == "small"
    assert catalog.source == "x.yaml"
    assert [t.rule_id for t in catalog.tags.values()] == ["tier.big", "tier.small", "alerts.quiet_big"]
    (task,) = catalog.tags["big"].tasks
    assert (task.assignee, task.due, task.kind, task.title["en"]) == ("owner", 2 * DAY, "follow_up", "Call")
    assert catalog.ages == frozenset({("last_activity", 30 * DAY)})
    assert catalog.windows == frozenset({("spend", 180 * DAY)})
    assert catalog.tags["big"].line == line_of(GOOD, "big:")


def test_version_is_a_content_hash() -> None:
    first = parse(GOOD).version
    assert parse(GOOD).version == first
    assert parse(GOOD + "# a comment\n").version != first
    assert parse(GOOD.replace("1000", "2000")).version != first
    assert load_default_catalog().version == load_default_catalog().version


def test_a_tag_may_declare_valid_for_in_the_duration_syntax() -> None:
    catalog = parse(edit("when: spend(180d) > 1000", "when: spend(180d) > 1000\n        valid_for: 1.5d"))
    assert catalog.tags["big"].valid_for == 36 * HOUR
    assert catalog.tags["small"].valid_for is None
    assert catalog.version != parse(GOOD).version


def test_load_catalog_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(edit("when: paid_orders_total >= 1", "when: paid_orders_totl >= 1"), encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert str(caught.value).startswith(f"{path}:{line_of(GOOD, 'paid_orders_total >= 1')}: ")


# --------------------------------------------------------------------------------------------
# each kind of problem, with its line


def test_invalid_yaml() -> None:
    text = edit("name: {en: Big, zh: 大}", "name: {en: Big, zh: 大")
    problem = only_problem(text)
    assert problem.file == "x.yaml"
    assert problem.message.startswith("invalid YAML: ")
    assert problem.line in (
        line_of(text, "name: {en: Big, zh: 大"),
        line_of(text, "name: {en: Big, zh: 大") + 1,
    )


def test_invalid_yaml_indentation_is_reported_on_its_line() -> None:
    text = "catalog: t\ndimensions:\n  a: 1\n b: 2\n"
    problem = only_problem(text)
    assert problem.line == 4
    assert problem.message.startswith("invalid YAML: ")


def test_not_utf8() -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(b"catalog: \xff\n", "x.yaml")
    assert str(caught.value).startswith("x.yaml:1: not UTF-8 text")


def test_an_empty_catalog() -> None:
    assert str(only_problem("")) == "x.yaml:1: the catalog is empty"
    assert str(only_problem("# nothing\n")) == "x.yaml:1: the catalog is empty"


def test_duplicate_key() -> None:
    text = edit("        when: paid_orders_total >= 1\n", "        when: paid_orders_total >= 1\n        when: true\n")
    problem = only_problem(text)
    assert str(problem) == f"x.yaml:{line_of(text, 'when: true')}: tag 'small': 'when' is given twice"


def test_duplicate_tag_in_one_dimension() -> None:
    text = edit("      small:\n", "      big:\n")
    problem = only_problem(text)
    assert problem.line == line_of(text, "      big:", occurrence=2)
    assert problem.message == "dimension 'tier'.tags: 'big' is given twice"


def test_unknown_key() -> None:
    text = edit("        when: spend(180d) > 1000\n", "        when: spend(180d) > 1000\n        colour: red\n")
    problem = only_problem(text)
    assert problem.line == line_of(text, "colour: red")
    assert problem.message == "tag 'big': unknown key 'colour' (allowed: definition, name, tasks, valid_for, when)"


def test_unknown_top_level_key() -> None:
    problem = only_problem(GOOD + "extras: 1\n")
    assert problem.line == line_of(GOOD + "extras: 1\n", "extras")
    assert problem.message.startswith("catalog: unknown key 'extras'")


def test_missing_when_is_reported_on_the_tag_line() -> None:
    text = edit("        when: paid_orders_total >= 1\n", "")
    assert str(only_problem(text)) == f"x.yaml:{line_of(text, 'small:')}: tag 'small': 'when' is required"


def test_empty_when() -> None:
    text = edit("when: paid_orders_total >= 1", "when:")
    problem = only_problem(text)
    line = text.splitlines().index("        when:") + 1
    assert str(problem) == f"x.yaml:{line}: tag 'small'.when must be a single value"


def test_bad_expression_is_reported_on_the_line_of_its_when() -> None:
    text = edit("when: spend(180d) > 1000", "when: spnd(180d) > 1000")
    problem = only_problem(text)
    assert problem.line == line_of(text, "spnd")
    assert problem.message == (
        "in condition: unknown function 'spnd' (did you mean 'spend'?)\n    spnd(180d) > 1000\n    ^"
    )


def test_a_type_error_in_a_condition() -> None:
    text = edit("when: paid_orders_total >= 1", 'when: paid_orders_total >= "one"')
    problem = only_problem(text)
    assert problem.line == line_of(text, '"one"')
    assert problem.message.startswith("in condition: cannot compare number >= string\n")


def test_a_bad_expression_in_a_block_scalar_points_at_its_own_line() -> None:
    text = edit(
        "when: paid_orders_total >= 1",
        "when: |\n              paid_orders_total >= 1\n              and spend(999d) > 0",
    )
    problem = only_problem(text)
    assert problem.line == line_of(text, "spend(999d)")
    assert "a window must be longer than 0 and at most 365d" in problem.message
    assert problem.message.endswith("    and spend(999d) > 0\n              ^")


def test_unknown_tag_in_a_condition() -> None:
    text = edit('tier == "big"', 'tier == "bigg"')
    problem = only_problem(text)
    assert problem.line == line_of(text, '"bigg"')
    assert "unknown tag 'bigg' in dimension 'tier' (it has: big, small)" in problem.message


def test_a_dimension_cycle() -> None:
    text = edit("when: paid_orders_total >= 1", """when: '"quiet_big" in alerts'""")
    problem = only_problem(text)
    assert (
        str(problem)
        == f"x.yaml:{line_of(text, 'tier:')}: dimensions read each other in a cycle: tier -> alerts -> tier"
    )


def test_a_condition_reading_its_own_dimension() -> None:
    text = edit("when: paid_orders_total >= 1", 'when: tier == "big"')
    problem = only_problem(text)
    assert (
        str(problem)
        == f"x.yaml:{line_of(text, 'tier ==')}: tag 'small': a condition cannot read its own dimension 'tier'"
    )


def test_a_tag_name_defined_in_two_dimensions() -> None:
    text = edit("      quiet_big:", "      small:").replace('tier == "big" and ', "")
    problem = only_problem(text)
    assert problem.line == line_of(text, "      small:", occurrence=2)
    assert problem.message == (
        "tag 'small' is already defined in dimension 'tier'; tag names must be unique across the catalog"
    )


def test_missing_language_text() -> None:
    text = edit("definition: {en: Small spender, zh: 小客户}", "definition: {en: Small spender}")
    assert str(only_problem(text)) == (
        f"x.yaml:{line_of(text, 'Small spender')}: tag 'small'.definition: missing language(s) zh"
    )


def test_missing_language_in_a_task_title() -> None:
    text = edit("title: {en: Call, zh: 致电}", "title: {zh: 致电}")
    problem = only_problem(text)
    assert problem.line == line_of(text, "title:")
    assert problem.message == "tag 'big' task title: missing language(s) en"


def test_bad_task_due_duration() -> None:
    text = edit("due: 2d", "due: 2 weeks")
    problem = only_problem(text)
    assert problem.line == line_of(text, "due:")
    assert problem.message.startswith("tag 'big' task due: not a duration: '2 weeks'")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0s", "tag 'big'.valid_for must be longer than zero, not '0s'"),
        ("0.0000001s", "tag 'big'.valid_for must be longer than zero, not '0.0000001s'"),
        ("-5s", "tag 'big'.valid_for: not a duration: '-5s' (expected a number and a unit s, m, h, d or y)"),
        ("30", "tag 'big'.valid_for: not a duration: '30' (expected a number and a unit s, m, h, d or y)"),
        ("a month", "tag 'big'.valid_for: not a duration: 'a month' (expected a number and a unit s, m, h, d or y)"),
        ("[30d]", "tag 'big'.valid_for must be a single value"),
        ("", "tag 'big'.valid_for must be a single value"),
    ],
)
def test_a_non_positive_or_malformed_valid_for_is_refused_on_its_line(value: str, message: str) -> None:
    text = edit("when: spend(180d) > 1000", f"when: spend(180d) > 1000\n        valid_for: {value}")
    assert str(only_problem(text)) == f"x.yaml:{line_of(text, 'valid_for:')}: {message}"


def test_bad_exclusive_flag() -> None:
    text = edit("exclusive: false", "exclusive: maybe")
    assert (
        str(only_problem(text))
        == f"x.yaml:{line_of(text, 'maybe')}: dimension 'alerts'.exclusive must be true or false"
    )


def test_bad_tag_name() -> None:
    text = edit("      small:", "      Small-One:")
    assert str(only_problem(text)) == (
        f"x.yaml:{line_of(text, 'Small-One')}: tag 'Small-One': names are lower-case letters, digits and _"
    )


def test_a_dimension_without_tags() -> None:
    text = GOOD + "  empty:\n    exclusive: true\n    name: {en: E, zh: E}\n    tags: {}\n"
    assert str(only_problem(text)) == f"x.yaml:{line_of(text, 'tags: {}')}: dimension 'empty' has no tags"


def test_several_problems_in_one_file_are_all_reported_in_line_order() -> None:
    text = edit("due: 2d", "due: soon")
    text = edit("when: paid_orders_total >= 1", "when: paid_orders_totl >= 1", text)
    text = edit("definition: {en: Big and quiet, zh: 大且沉默}", "definition: {en: Big and quiet}", text)
    text = edit("    exclusive: false\n", "    exclusive: false\n    colour: red\n", text)
    found = problems(text)
    assert [p.line for p in found] == [
        line_of(text, "due: soon"),
        line_of(text, "paid_orders_totl"),
        line_of(text, "colour"),
        line_of(text, "Big and quiet"),
    ]
    message = str(CatalogError(found))
    assert message.count("x.yaml:") == 4


def test_a_catalog_without_dimensions_is_refused_as_it_would_drop_every_tag() -> None:
    problem = only_problem("catalog: empty\ndimensions: {}\n")
    assert str(problem) == ("x.yaml:2: the catalog has no dimensions: switching to it would take every tag "
                            "from every customer")


def test_a_stage_that_does_not_exist_is_refused_with_the_closest_one() -> None:
    text = edit("when: paid_orders_total >= 1", 'when: latest_stage in ["proposal", "qoted"]')
    problem = only_problem(text)
    assert problem.line == line_of(text, "qoted")
    assert problem.message.startswith("in condition: latest_stage is never 'qoted' (did you mean 'quoted'?): "
                                      "it is one of new_lead, contacted")


def test_an_unquoted_comma_in_a_text_is_explained_in_plain_words() -> None:
    text = edit("definition: {en: Small spender, zh: 小客户}", "definition: {en: Has no email, but a phone, zh: 小}")
    problem = only_problem(text)
    assert problem.line == line_of(text, "but a phone")
    assert problem.message == ("tag 'small'.definition: in {...} a comma separates entries; put a text that "
                               'contains a comma in quotes, e.g. en: "Has no email, but a phone"')
