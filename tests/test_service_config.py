"""Service config: every key of the example parses; every mistake names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyramidd.service.config import (
    ConfigError,
    load_config,
    matches,
    parse_bind,
    parse_config,
    parse_size,
    restart_needed,
)

REPO = Path(__file__).resolve().parents[1]


def base(**watch: object) -> dict:
    return {"state_dir": "/tmp/s", "watch": [{"folder": "/d", "output": "/o", **watch}]}


def problems(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return str(info.value)


def test_example_config_covers_every_key_and_parses():
    config = load_config(REPO / "config" / "pyramidd.toml")
    assert [w.name for w in config.watches] == ["scans", "maps"]
    text = (REPO / "config" / "pyramidd.toml").read_text()
    from pyramidd.service import config as module

    for key in module._GLOBAL_KEYS | module._WATCH_KEYS | module._HTTP_KEYS | module._LOG_KEYS:
        if key in ("http", "log"):
            assert f"\n[{key}]\n" in text
        elif key != "watch":
            assert f"\n{key} = " in text, f"config/pyramidd.toml does not show {key}"


def test_demo_config_parses():
    config = load_config(REPO / "config" / "demo.toml")
    assert config.http.host == "127.0.0.1"


def test_defaults():
    config = parse_config(base(), base=Path("/base"))
    w = config.watches[0]
    assert (w.name, w.settle_time, w.min_age, w.patterns, w.on_success) == ("d", 5.0, 2.0, ("*",), "move")
    assert config.http.host == "127.0.0.1" and config.jobs == 2 and config.retries == 2
    assert w.processing == Path("/d/processing") and w.failed == Path("/d/failed")


def test_relative_paths_are_taken_from_base():
    data = {"state_dir": "state", "watch": [{"folder": "drop", "output": "out"}]}
    config = parse_config(data, base=Path("/srv/x"))
    assert config.state_dir == Path("/srv/x/state")
    assert config.watches[0].folder == Path("/srv/x/drop")


def test_a_warp_table_reaches_the_build_options_and_is_checked():
    gcps = [[0, 0, 10, 20], [100, 0, 110, 20], [0, 100, 10, 120]]
    config = parse_config(base(warp={"gcps": gcps, "order": 1, "resampler": "cubic"}))
    assert config.watches[0].options.extra["warp"]["gcps"] == gcps
    assert parse_config(base(warp=False)).watches[0].options.extra["warp"] is False
    assert "watch[0].warp.orderr: unknown key" in problems(base(warp={"orderr": 1}))
    assert "watch[0].warp: order must be 1, 2 or 3" in problems(base(warp={"order": 4}))
    assert "watch[0].warp: warp-resampler must be one of" in problems(
        base(warp={"resampler": "lanczos"}))
    assert "watch[0].warp: gcps: GCP 1 needs" in problems(base(warp={"gcps": [{"pixel": 1}]}))
    assert "watch[0].warp: must be a table" in problems(base(warp="yes"))
    assert "watch[0].warp: output_size must be [width, height]" in problems(
        base(warp={"output_size": [0, 10]}))


def test_unknown_keys_are_named_with_a_suggestion():
    text = problems({**base(), "worker": 3})
    assert "worker: unknown key (did you mean 'workers'?)" in text
    text = problems(base(setle_time=1))
    assert "watch[0].setle_time: unknown key (did you mean 'settle_time'?)" in text
    assert "http.port: unknown key" in problems({**base(), "http": {"port": 1}})


@pytest.mark.parametrize("key, value, expected", [
    ("tile_size", 0, "watch[0]: tile_size must be between 1 and 8192"),
    ("tile_size", "big", "watch[0].tile_size: must be a whole number"),
    ("overlap", 300, "overlap 300 must be less than tile_size"),
    ("quality", 101, "quality must be between 1 and 100"),
    ("suffix", "gif", "suffix must be one of"),
    ("settle_time", -1, "watch[0].settle_time: must be at least 0.0"),
    ("settle_time", True, "watch[0].settle_time: must be a number"),
    ("done_marker", "yes", "watch[0].done_marker: must be true or false"),
    ("on_success", "keep", "watch[0].on_success: must be \"move\" or \"delete\""),
    ("patterns", "*.png", "watch[0].patterns: must be a list of glob patterns"),
    ("patterns", ["a/*.png"], "watch[0].patterns: patterns match file names"),
    ("background", "not-a-colour", "watch[0].background: 'not-a-colour' is not a colour"),
    ("layout", "nope", "watch[0].layout: no layout called 'nope'"),
    ("resampler", "nope", "watch[0].resampler: no resampler called 'nope'"),
    ("name", "bad name", "watch[0].name: 'bad name' must be letters"),
    ("sidecars", ["points"], "watch[0].sidecars: must be a list of name endings"),
])
def test_bad_watch_values_name_the_key(key, value, expected):
    table = base(**{key: value})
    if key == "overlap":
        table["watch"][0]["tile_size"] = 256
    assert expected in problems(table)


@pytest.mark.parametrize("key, value, expected", [
    ("workers", -1, "workers: must be 0 or more"),
    ("jobs", 0, "jobs: must be 1 or more"),
    ("workers", True, "workers: must be a whole number"),
    ("stop_timeout", 0, "stop_timeout: must be more than 0"),
    ("memory_budget", "lots", "memory_budget: 'lots' is not a size"),
    ("http", {"bind": "localhost"}, "http.bind: 'localhost' is not host:port"),
    ("log", {"level": "loud"}, "log.level: must be one of"),
    ("watch", {"folder": "/d"}, "watch: must be an array of tables"),
])
def test_bad_global_values_name_the_key(key, value, expected):
    assert expected in problems({**base(), key: value})


def test_every_problem_is_reported_at_once():
    text = problems({"state_dir": "/s", "jobs": 0, "watch": [{"folder": "/d"}, {"output": "/o"}]})
    assert "jobs:" in text and "watch[0].output: missing" in text and "watch[1].folder: missing" in text


def test_watches_must_not_collide():
    data = {"watch": [{"folder": "/d", "output": "/o"}, {"folder": "/d", "output": "/p", "name": "x"}]}
    assert "watch[1].folder: /d is also watched by watch[0]" in problems(data)
    data = {"watch": [{"folder": "/d", "output": "/o", "name": "a"}, {"folder": "/e", "output": "/p", "name": "a"}]}
    assert "watch[1].name: 'a' is also the name of watch[0]" in problems(data)
    assert "must not be the drop folder or inside it" in problems(base(output="/d/out"))
    data = {"watch": [{"folder": "/d", "output": "/o"}, {"folder": "/e", "output": "/d/x"}]}
    assert "watch[1].output: is inside the drop folder of watch 'd'" in problems(data)
    assert "no [[watch]] table" in problems({"state_dir": "/s"})


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("state_dir = \n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML.*line 1"):
        load_config(bad)


def test_sizes_binds_patterns_and_restart_keys():
    assert parse_size("512MiB") == 512 * 1024**2 and parse_size("2GB") == 2 * 10**9
    assert parse_size(10) == 10
    for bad in ("", "-1", "1XB", 0):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert parse_bind("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_bind("[::1]:8765") == ("::1", 8765)
    w = parse_config(base(patterns=["*.png", "*.tif"], ignore=["skip*"])).watches[0]
    assert matches("a.png", w) and not matches("a.jpg", w) and not matches("skip.png", w)
    a = parse_config(base())
    b = parse_config({**base(), "workers": 3, "retries": 5})
    assert restart_needed(a, b) == ["workers"]


def test_disabled_plugins_is_a_list_of_names(tmp_path):
    from pyramidd.service.config import ConfigError, parse_config

    watch = [{"folder": str(tmp_path / "d"), "output": str(tmp_path / "o")}]
    assert parse_config({"watch": watch, "disabled_plugins": ["viewer"]}).disabled_plugins == ("viewer",)
    assert parse_config({"watch": watch}).disabled_plugins == ()
    with pytest.raises(ConfigError, match="disabled_plugins"):
        parse_config({"watch": watch, "disabled_plugins": "viewer"})
