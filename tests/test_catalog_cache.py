"""The spec catalog cache: a warm load parses and validates nothing and gives the same specs;
a changed file, a changed variable or a corrupt cache file are noticed; values of variables never
reach the disk; --include files are keyed by content."""
import json
import shutil

import pytest

from cytoreg.registry import catalog, catalog_cache, specs

BUILTIN_TASKS = catalog.builtin_spec_dirs()[0]


@pytest.fixture
def builtins(tmp_path, monkeypatch):
    """Built-in spec folders replaced by copies the test may edit; a private cache folder."""
    tasks, models = tmp_path / "tasks", tmp_path / "models"
    tasks.mkdir()
    for name in ("acevedo.yaml", "demo.yaml", "bmc.yaml"):
        shutil.copy(BUILTIN_TASKS / name, tasks / name)
    shutil.copytree(catalog.builtin_spec_dirs()[1], models)
    monkeypatch.setattr(catalog, "builtin_spec_dirs", lambda: [tasks, models])
    monkeypatch.setenv("CYTOREG_CACHE_DIR", str(tmp_path / "cache"))
    return tasks


def _snapshot(cat):
    return {(e.name, e.origin): (e.target.data, e.target.chain, str(e.target.path), e.target.origin)
            for reg in (cat.tasks, cat.models) for e in reg}


def _no_parsing(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("a spec was parsed or validated although the cache is warm")

    monkeypatch.setattr(catalog, "read_raw", fail)
    monkeypatch.setattr(catalog, "resolve", fail)


def test_warm_load_reads_nothing_and_equals_a_fresh_load(builtins, monkeypatch):
    cold = catalog.Catalog.load()
    assert list((builtins.parent / "cache").glob("catalog-*.json"))
    with monkeypatch.context() as m:
        _no_parsing(m)
        warm = catalog.Catalog.load()
    assert _snapshot(warm) == _snapshot(cold)
    assert warm.task("demo").hash == cold.task("demo").hash
    assert {"demo", "acevedo", "bmc"} <= set(warm.tasks.names())


def test_changed_file_is_parsed_again(builtins):
    catalog.Catalog.load()
    demo = builtins / "demo.yaml"
    demo.write_text(demo.read_text().replace("test_per_class: 50", "test_per_class: 7"))
    assert catalog.Catalog.load().task("demo").get("sampling")["test_per_class"] == 7


def test_changed_variable_revalidates_and_values_stay_off_disk(builtins, monkeypatch):
    monkeypatch.setenv("CYTOREG_DATA", "/data/one-sk-SECRETVALUE")
    assert catalog.Catalog.load().task("bmc").get("data")["root"].startswith("/data/one-sk-SECRETVALUE/bmc")
    monkeypatch.setenv("CYTOREG_DATA", "/data/two")
    assert catalog.Catalog.load().task("bmc").get("data")["root"].startswith("/data/two/bmc")
    with monkeypatch.context() as m:  # and the rewritten cache is warm for the new value
        _no_parsing(m)
        assert catalog.Catalog.load().task("bmc").get("data")["root"].startswith("/data/two/bmc")
    (cache_file,) = (builtins.parent / "cache").glob("catalog-*.json")
    text = cache_file.read_text()
    assert "SECRETVALUE" not in text and "/data/two" not in text
    assert "${CYTOREG_DATA:-~/cytoreg-data}/bmc" in text


@pytest.mark.parametrize("garbage", ["{not json", "[]", '{"key": 3}', ""])
def test_corrupt_cache_file_is_ignored_and_rebuilt(builtins, garbage):
    cold = catalog.Catalog.load()
    (cache_file,) = (builtins.parent / "cache").glob("catalog-*.json")
    cache_file.write_text(garbage)
    assert _snapshot(catalog.Catalog.load()) == _snapshot(cold)
    assert json.loads(cache_file.read_text())["key"]


def test_key_changed_entry_is_stale(builtins, monkeypatch):
    """A wrongly shaped entry under the right key (a hand-edited file) falls back to parsing."""
    catalog.Catalog.load()
    (cache_file,) = (builtins.parent / "cache").glob("catalog-*.json")
    data = json.loads(cache_file.read_text())
    data["raws"] = [{"path": r["path"]} for r in data["raws"]]
    cache_file.write_text(json.dumps(data))
    assert catalog.Catalog.load().task("demo").get("sampling")["test_per_class"] == 50


def test_spec_errors_are_reported_on_every_load(builtins):
    catalog.Catalog.load()
    (builtins / "demo.yaml").write_text((builtins / "demo.yaml").read_text() + "bogus_key: 1\n")
    for _ in range(2):
        with pytest.raises(specs.SpecError, match="bogus_key"):
            catalog.Catalog.load()


def test_include_files_are_cached_by_content(builtins, tmp_path, monkeypatch):
    """An edit that keeps size and mtime (within the file system's timestamp resolution) is seen."""
    import os

    inc = tmp_path / "inc"
    inc.mkdir()
    f = inc / "t.yaml"
    f.write_text("spec: task/v1\nname: zzinclude\nextends: demo\nsampling: {test_per_class: 3}\n")
    assert catalog.Catalog.load([inc]).task("zzinclude").get("sampling")["test_per_class"] == 3
    with monkeypatch.context() as m:
        _no_parsing(m)
        assert catalog.Catalog.load([inc]).task("zzinclude").get("sampling")["test_per_class"] == 3
    st = f.stat()
    f.write_text("spec: task/v1\nname: zzinclude\nextends: demo\nsampling: {test_per_class: 4}\n")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert catalog.Catalog.load([inc]).task("zzinclude").get("sampling")["test_per_class"] == 4


def test_cache_dir_defaults_to_the_user_cache(monkeypatch):
    monkeypatch.delenv("CYTOREG_CACHE_DIR")
    from platformdirs import user_cache_dir

    assert str(catalog_cache.cache_dir()) == user_cache_dir("cytoreg", appauthor=False)
