"""The ``pyramidd`` command as a user runs it: real processes, real files."""

from __future__ import annotations

import importlib.util
import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from pyramidd.service.testing import pyramidd_command

PYRAMIDD = [sys.executable, "-m", "pyramidd"]  # as the installed command


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYRAMIDD, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8)).save(path)
    return path


def test_build_prints_one_summary_line_and_no_progress_on_a_pipe(tmp_path, image):
    r = run("build", str(image), str(tmp_path / "out"), "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no progress bar when stderr is not a terminal
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(
        r"pyramidd: .*out\.dzi: 10 levels, 13 tiles, [\d.]+ (KiB|MiB), [\d.]+s, "
        r"peak memory [\d.]+ MiB \(process tree\)",
        lines[0],
    ), lines[0]
    assert (tmp_path / "out.dzi").exists()
    assert (tmp_path / "out_files" / "9" / "1_1.jpg").exists()


def test_the_summary_peak_counts_the_workers_of_a_build_shorter_than_a_sample(
    tmp_path, image, monkeypatch
):
    from pyramidd import cli, memory

    seen: list[int] = []
    real = memory.descendants

    def descendants(pid: int) -> list[int]:
        found = real(pid)
        seen.append(len(found))
        return found

    monkeypatch.setattr(memory, "descendants", descendants)
    # The sampler's thread samples at the start (no worker yet) and not again in time.
    monkeypatch.setattr(cli, "PeakSampler", lambda interval: memory.PeakSampler(interval=600))
    assert cli.main(["build", str(image), str(tmp_path / "out"), "--workers", "2"]) == 0
    assert max(seen) >= 3  # the coordinator and its workers


def _bad_inputs(tmp: Path, image: Path) -> dict[str, tuple[list[str], str]]:
    empty = tmp / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp / "truncated.png"
    truncated.write_bytes(image.read_bytes()[:400])
    corrupt = tmp / "corrupt.png"
    data = bytearray(image.read_bytes())
    data[100:300] = bytes(200)
    corrupt.write_bytes(bytes(data))
    text = tmp / "notes.txt"
    text.write_text("not an image\n")
    bomb = tmp / "bomb.png"
    Image.new("L", (20000, 20000)).save(bomb, optimize=True)
    # A TIFF cut before the directory a writer put at its end (libvips does), and one
    # cut inside its tile table: tifffile would warn about both, three times each.
    cut_tiff, cut_table = tmp / "cut.tif", tmp / "cut_table.tif"
    tifffile.imwrite(cut_tiff, np.zeros((512, 512), np.uint8), tile=(16, 16))
    data = bytearray(cut_tiff.read_bytes())
    with tifffile.TiffFile(cut_tiff) as tif:
        table = tif.pages.first.tags[324].valueoffset
    cut_table.write_bytes(bytes(data[: table + 16]))
    struct.pack_into("<I", data, 4, len(data) + 8)  # the first directory past the end
    cut_tiff.write_bytes(bytes(data))
    out = str(tmp / "out")
    return {
        "missing": ([str(tmp / "nope.png"), out], "no such file"),
        "folder": ([str(tmp), out], "folder"),
        "empty": ([str(empty), out], "empty"),
        "truncated": ([str(truncated), out], "truncated"),
        "corrupt": ([str(corrupt), out], "corrupt.png"),
        "unsupported": ([str(text), out], "not a format"),
        "too many pixels": ([str(bomb), out, "--max-pixels", "100000000"], "--max-pixels"),
        "TIFF cut before its directory": ([str(cut_tiff), out], "before the end of its first directory"),
        "TIFF cut in its tile table": ([str(cut_table), out], "before the end of its tile offsets"),
        "unwritable output": ([str(image), "/proc/pyramidd-out"], "/proc"),
        "tile size 0": ([str(image), out, "--tile-size", "0"], "--tile-size"),
        "overlap too big": ([str(image), out, "--overlap", "254"], "overlap"),
        "bad layout": ([str(image), out, "--layout", "nope"], "no sink called 'nope'"),
        "bad colour": ([str(image), out, "--background", "blurple!"], "--background"),
    }


def test_bad_input_and_options_give_one_clear_line(tmp_path, image):
    for name, (args, words) in _bad_inputs(tmp_path, image).items():
        r = run("build", *args, "--workers", "1")
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pyramidd: error: "), (name, r.stderr)
        assert words.lower() in lines[0].lower(), (name, lines[0])
        assert "Traceback" not in r.stderr
        assert not (tmp_path / "out.dzi").exists() and not (tmp_path / "out_files").exists(), name
        assert not [p for p in tmp_path.iterdir() if "staging" in p.name], name


def test_modules_in_the_current_folder_do_not_replace_the_workers_imports(tmp_path):
    # The fork server and the workers are `python -c` processes: without -P the folder
    # a build is started from comes first on their module path. (The installed script,
    # not `python -m`, which puts that folder on the command's own path.)
    command = pyramidd_command()
    assert command[0] != sys.executable, "the installed command"
    here = tmp_path / "here"
    here.mkdir()
    for name in ("selectors", "tifffile", "cv2"):
        (here / f"{name}.py").write_text("raise RuntimeError('imported from the current folder')\n")
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, np.zeros((300, 500, 3), np.uint8), tile=(256, 256))
    for workers in ("1", "2"):
        r = subprocess.run([*command, "build", str(src), str(tmp_path / f"out{workers}"),
                            "--workers", workers], capture_output=True, text=True,
                           timeout=120, cwd=here)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / f"out{workers}.dzi").exists()


def _private_mounts_allowed() -> bool:
    try:
        return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.mark.skipif(not _private_mounts_allowed(), reason="needs unshare -m (root)")
def test_a_full_dev_shm_is_named_when_a_worker_dies_of_it(tmp_path):
    """Shared memory /dev/shm cannot back kills the worker that touches it with SIGBUS
    (a container's 64 MiB default filled by other programs, say): the error says so,
    and nothing is left behind. Run in a private mount namespace with a tiny /dev/shm."""
    from pyramidd.testing import gradient, write_image

    tif = write_image(tmp_path / "in.tif", gradient(600, 600, 3))
    script = (f"mount -t tmpfs -o size=64k tmpfs /dev/shm && exec {sys.executable} -m pyramidd"
              f" build {tif} {tmp_path / 'out'} --workers 2")
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert "killed by signal 7" in r.stderr and "/dev/shm has 0.0 MiB free" in r.stderr
    assert "--shm-size" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_the_command_guesses_a_builds_fork_server_from_its_arguments():
    from pyramidd.launch import build_fork_server_plugins as guess

    assert guess(["build", "in.tif", "out"]) == ()
    assert guess(["build", "in.tif", "out", "--workers", "1"]) == ()  # one worker: forked too
    assert guess(["build", "--workers=3", "--disable-plugin", "a", "in.tif", "out",
                  "--disable-plugin=b"]) == ("a", "b")
    assert guess(["build", "in.tif", "--disable-plugin"]) is None
    assert guess(["build", "--help"]) is None
    assert guess(["run", "--workers", "2"]) is None
    assert guess([]) is None


#: ``pyramidd`` as installed, saying on stderr when it starts or stops a fork server.
TRACED = """
import sys
from pyramidd import launch
start, stop = launch.start_fork_server, launch.stop
def traced_start(plugins=()):
    started = start(plugins)
    print("start", started[0].pid, ",".join(plugins), file=sys.stderr, flush=True)
    return started
def traced_stop(started):
    print("stop", started[0].pid, file=sys.stderr, flush=True)
    stop(started)
launch.start_fork_server, launch.stop = traced_start, traced_stop
from pyramidd.command import main
main()
"""


def _traced(*args: str) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    r = subprocess.run([sys.executable, "-c", TRACED, *args], capture_output=True, text=True,
                       timeout=120)
    events = [line.split(" ") for line in r.stderr.splitlines() if line.startswith(("start ", "stop "))]
    return r, events


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not Path(f"/proc/{pid}").exists()


def test_the_command_starts_a_builds_fork_server_before_parsing_and_uses_it(tmp_path, image):
    r, events = _traced("build", str(image), str(tmp_path / "a"), "--workers", "2",
                        "--disable-plugin", "template")
    assert r.returncode == 0, r.stderr
    assert [e[0] for e in events] == ["start"] and events[0][2] == "template"  # one server
    assert (tmp_path / "a.dzi").exists()
    # An abbreviated option the guess cannot read: the parsed one wins, the guess is stopped.
    r, events = _traced("build", str(image), str(tmp_path / "b"), "--disable-pl", "template")
    assert r.returncode == 0, r.stderr
    assert [e[0] for e in events] == ["start", "stop", "start"]
    assert events[0][1] == events[1][1] and events[2][2] == "template"
    assert (tmp_path / "b.dzi").exists()
    # One worker: forked from the server started first as well.
    r, events = _traced("build", str(image), str(tmp_path / "c"), "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert [e[0] for e in events] == ["start"]
    assert (tmp_path / "c.dzi").exists()
    r, events = _traced("plugins")
    assert r.returncode == 0 and events == []


def test_a_fork_server_started_for_a_build_that_fails_ends_with_it(tmp_path, image):
    for args in (["build", str(tmp_path / "nope.png"), str(tmp_path / "out")],
                 ["build", str(image), str(tmp_path / "out"), "--tile-size", "0"],
                 ["build", str(image), str(tmp_path / "out"), "--no-such-option"]):
        r, events = _traced(*args, "--workers", "2")
        assert r.returncode == 2, r.stderr
        assert events and events[0][0] == "start", r.stderr
        assert _gone(int(events[0][1])), args


def test_a_tiff_builds_coordinator_skips_pillow_openslide_and_package_metadata(tmp_path):
    """Pillow and OpenSlide (25-45 ms of a build's start) are loaded only for inputs and
    options that need them: a tiled TIFF with the default background needs neither.
    Nor is importlib.metadata (20-25 ms) imported to find the plugins, nor the XML and
    CSV parsers of the GCP and graph formats every build registers, nor
    importlib.resources for the viewer page's template."""
    from pyramidd.testing import gradient, write_image

    tif = write_image(tmp_path / "in.tif", gradient(300, 200, 3))
    code = (
        "import sys; from pyramidd import cli\n"
        f"assert cli.main(['build', {str(tif)!r}, {str(tmp_path / 'out')!r},"
        " '--workers', '1', '--background', '#ffffff']) == 0\n"
        "print(sorted(m for m in ('PIL', 'openslide', 'importlib.metadata', 'xml.etree.ElementTree',"
        " 'csv', 'importlib.resources') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
    assert (tmp_path / "out.dzi").is_file()


def test_debug_shows_the_traceback(tmp_path):
    r = run("build", str(tmp_path / "nope.png"), str(tmp_path / "out"), "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_plugins_lists_the_built_in_formats():
    r = run("plugins")
    assert r.returncode == 0
    for line in ("sink dzi", "sink tms", "sink xyz", "source tiff", "source pillow", "source npy",
                 "resampler box", "resampler nearest", "resampler smooth"):
        assert line in r.stdout


def test_progress_bar_on_a_terminal(tmp_path, image):
    import os
    import pty

    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)).save(big)
    pid, fd = pty.fork()
    if pid == 0:  # child: stdout and stderr are the terminal
        os.execv(sys.executable, [*PYRAMIDD, "build", str(big), str(tmp_path / "out"), "--workers", "2"])
    chunks = []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert re.search(r"\r\[[#-]+\] \d+/265 tiles +[\d,]+ tiles/s +ETA \d+", text), text
    assert "265 tiles," in text  # the summary line follows the bar


def test_the_set_up_checkout_needs_no_compiling():
    """``scripts/setup`` byte-compiles the editable sources: every module of pyramidd
    and its plugins has byte code for this Python. Where Python may not write it (a
    read-only system, as under the service's unit, or PYTHONDONTWRITEBYTECODE), every
    process compiled every module again at its start. A module edited since the setup
    is compiled on import as before and not counted; a module added since needs
    ``scripts/setup`` again."""
    root = Path(__file__).resolve().parents[1]
    sources = [*root.glob("src/**/*.py"), *root.glob("plugins/*/src/**/*.py")]
    assert len(sources) > 50
    uncompiled = []
    for source in sources:
        cached = Path(importlib.util.cache_from_source(str(source)))
        if not cached.exists() or cached.read_bytes()[:4] != importlib.util.MAGIC_NUMBER:
            uncompiled.append(str(source.relative_to(root)))
    assert not uncompiled, f"compiled at every start (run scripts/setup): {uncompiled}"
