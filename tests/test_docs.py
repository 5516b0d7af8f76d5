"""The plugin author guide (docs/plugins.md) stays true.

- Its hook reference is generated from the hookspec docstrings; the test fails when a
  hook is missing from the guide or its text differs from the docstring. Regenerate
  with ``python tests/test_docs.py``.
- Its 20-line plugin from zero really builds a pyramid through ``pyramidd build``,
  and its example test really passes under pytest.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyramidd import hookspecs
from pyramidd.testing import check_dzi, gradient, write_image

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "plugins.md"
BEGIN = "<!-- hook reference: generated from src/pyramidd/hookspecs.py by `python tests/test_docs.py` -->"
END = "<!-- end of hook reference -->"


# --------------------------------------------------------------------------- generator


def hooks() -> list:
    """Hook specifications in the order the module defines them."""
    marker = f"{hookspecs.PROJECT}_spec"
    found = [f for _, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, marker)]
    return sorted(found, key=lambda f: f.__code__.co_firstlineno)


def _rst_to_md(text: str) -> str:
    text = re.sub(r":(?:class|func|meth|attr|mod|ref|data):`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def runs_in(doc: str) -> str:
    """The phrase after "Runs in" in a docstring: where the hook is called."""
    match = re.search(r"Runs in ((?:the |every |a |one )?[^.,;]*?)(?: before| after|[.,;])", doc.replace("\n", " "))
    return match.group(1).replace("**", "").strip() if match else ""


def reference() -> str:
    """The generated hook reference (markdown)."""
    marker = f"{hookspecs.PROJECT}_spec"
    rows = ["| hook | runs in | answers |", "|---|---|---|"]
    sections = []
    for fn in hooks():
        doc = inspect.getdoc(fn) or ""
        first = getattr(fn, marker).get("firstresult")
        answers = "first non-None wins" if first else "every implementation is called"
        rows.append(f"| [`{fn.__name__}`](#{fn.__name__}) | {runs_in(doc)} | {answers} |")
        # Annotations are strings (postponed evaluation); show them without quotes.
        signature = str(inspect.signature(fn)).replace("'", "")
        sections.append(
            f"### `{fn.__name__}`\n\n"
            f"```python\n@hookimpl\ndef {fn.__name__}{signature}:\n```\n\n"
            f"{_rst_to_md(doc)}\n"
        )
    return "\n".join([BEGIN, "", *rows, "", *sections, END])


def guide_reference(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end]


def regenerate() -> None:
    """Rewrite the generated part of the guide from the hookspecs."""
    text = GUIDE.read_text()
    GUIDE.write_text(text.replace(guide_reference(text), reference()))


# --------------------------------------------------------------------------- tests


def test_every_hook_has_a_section_in_the_guide():
    text = GUIDE.read_text()
    missing = [fn.__name__ for fn in hooks() if f"### `{fn.__name__}`" not in text]
    assert missing == [], f"hooks not documented in docs/plugins.md: {missing}"


def test_the_guide_documents_no_hook_that_does_not_exist():
    text = GUIDE.read_text()
    names = {fn.__name__ for fn in hooks()}
    documented = set(re.findall(r"^### `(pyramidd_\w+)`", text, re.M))
    assert documented - names == set()


def test_every_hook_says_where_it_runs():
    nowhere = [fn.__name__ for fn in hooks() if not runs_in(inspect.getdoc(fn) or "")]
    assert nowhere == [], f"hookspec docstrings without 'Runs in ...': {nowhere}"


def test_the_reference_matches_the_hookspec_docstrings():
    assert guide_reference(GUIDE.read_text()) == reference(), (
        "docs/plugins.md is out of date with src/pyramidd/hookspecs.py:"
        " run `python tests/test_docs.py` to regenerate its hook reference"
    )


def code_block(text: str, marker: str) -> str:
    """The fenced code block right after an HTML comment ``<!-- marker -->``."""
    match = re.search(rf"<!-- {re.escape(marker)} -->\s*```\w*\n(.*?)```", text, re.S)
    assert match, f"no code block marked {marker!r} in the guide"
    return match.group(1)


def test_the_plugin_from_zero_is_twenty_lines():
    code = code_block(GUIDE.read_text(), "example plugin")
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 20, f"the guide's plugin from zero has grown to {len(lines)} lines"


@pytest.fixture
def example(tmp_path):
    """The guide's example plugin and test, written as files; the environment that
    loads the plugin as ``PYRAMIDD_PLUGINS`` does for a plugin under development."""
    text = GUIDE.read_text()
    (tmp_path / "max_plugin.py").write_text(code_block(text, "example plugin"))
    (tmp_path / "netpbm_plugin.py").write_text(code_block(text, "example source"))
    (tmp_path / "test_netpbm.py").write_text(code_block(text, "example test"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    env["PYRAMIDD_PLUGINS"] = "max_plugin,netpbm_plugin"
    return tmp_path, env


def test_the_plugin_from_zero_builds_a_pyramid(example):
    folder, env = example
    image = gradient(300, 200, 3)
    source = write_image(folder / "stars.png", image)
    listed = subprocess.run([sys.executable, "-m", "pyramidd.cli", "plugins"], env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    assert "resampler max" in listed.stdout
    subprocess.run(
        [sys.executable, "-m", "pyramidd.cli", "build", str(source), str(folder / "out" / "stars"),
         "--resampler", "max", "--suffix", "png", "--workers", "1"],
        env=env, capture_output=True, timeout=120, check=True,
    )
    check_dzi(folder / "out" / "stars.dzi")
    # Level 0 is one pixel: the brightest value of each band over the whole image.
    level0 = np.asarray(Image.open(folder / "out" / "stars_files" / "0" / "0_0.png"))
    np.testing.assert_array_equal(level0.reshape(-1), image.reshape(-1, 3).max(axis=0))


def test_the_source_format_builds_a_pyramid(example):
    folder, env = example
    image = gradient(300, 200, 3)
    ppm = folder / "photo.ppm"
    ppm.write_bytes(b"P6\n300 200\n255\n" + image.tobytes())
    listed = subprocess.run([sys.executable, "-m", "pyramidd.cli", "plugins"], env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    assert "source netpbm" in listed.stdout
    traced = subprocess.run(
        [sys.executable, "-m", "pyramidd.cli", "build", str(ppm), str(folder / "out" / "photo"),
         "--suffix", "png", "--workers", "1"],
        env={**env, "PYRAMIDD_TRACE_PLUGINS": "1"}, capture_output=True, text=True, timeout=120,
    )
    assert traced.returncode == 0, traced.stderr
    grid = check_dzi(folder / "out" / "photo.dzi")
    assert (grid.width, grid.height) == (300, 200)
    top = np.asarray(Image.open(folder / "out" / "photo_files" / str(grid.top) / "0_0.png"))
    x0, y0, x1, y1 = grid.tile_rect(grid.keys(grid.top).__next__())
    assert (top == image[y0:y1, x0:x1]).all()


def test_the_example_test_passes(example):
    folder, env = example
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_netpbm.py"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "passed" in result.stdout


if __name__ == "__main__":
    regenerate()
    print(textwrap.shorten(f"regenerated the hook reference in {GUIDE}", 200))
