"""Which files the cockpit serves, with which content types, and what it says when unbuilt."""

from __future__ import annotations

from pathlib import Path

from streams.cockpit import MISSING_BUILD, Assets, default_folder


def built(folder: Path) -> Path:
    (folder / "build").mkdir(parents=True)
    (folder / "index.html").write_text("<!doctype html>")
    (folder / "app.js").write_text("")
    (folder / "styles.css").write_text("")
    (folder / "package.json").write_text("{}")
    (folder / "build" / "echarts.min.js").write_text("")
    return folder


def test_page_sources_and_the_built_chart_library_are_served_with_their_content_types(tmp_path: Path) -> None:
    assets = Assets(built(tmp_path))
    assert assets.missing() == []
    assert assets.find("app.js").content_type == "text/javascript; charset=utf-8"  # type: ignore[union-attr]
    assert assets.find("styles.css").content_type == "text/css; charset=utf-8"  # type: ignore[union-attr]
    assert assets.find("echarts.min.js").path == tmp_path / "build" / "echarts.min.js"  # type: ignore[union-attr]


def test_nothing_else_is_served(tmp_path: Path) -> None:
    assets = Assets(built(tmp_path))
    (tmp_path / "node_modules").mkdir()
    for name in ("package.json", "../index.html", "build/echarts.min.js", ".hidden.js", "node_modules", "nope.js"):
        assert assets.find(name) is None, name


def test_an_unbuilt_cockpit_says_how_to_build_it(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    assert Assets(tmp_path).missing() == ["echarts.min.js"]
    assert "make cockpit" in MISSING_BUILD


def test_the_default_folder_is_the_source_trees_cockpit() -> None:
    assert (default_folder() / "index.html").is_file()
    assert (default_folder() / "package-lock.json").is_file(), "the npm lock pins the chart library"
