"""Build options as the command line and the service's profiles give them."""

from __future__ import annotations

import pytest
from PIL import ImageColor

from pyramidd.errors import OptionError
from pyramidd.options import parse_colour


@pytest.mark.parametrize("text", ["white", "BLACK", "#abc", "#abcd", "#A0b1C2", "#a0b1c2d3",
                                  " #123456 ", "red", "rgb(10, 20, 30)", "hsl(120, 100%, 25%)"])
def test_colours_read_as_pillow_reads_them(text):
    """Hex and the defaults are parsed without Pillow; the result is Pillow's."""
    rgba = ImageColor.getrgb(text.strip())
    assert parse_colour(text) == tuple(rgba) + (255,) * (4 - len(rgba))


def test_comma_separated_channels():
    assert parse_colour("10,20,30") == (10, 20, 30, 255)
    assert parse_colour("10, 20, 30, 40") == (10, 20, 30, 40)


@pytest.mark.parametrize("text", ["blurple!", "#12345", "#+f+f+f", "#ggg", "1,2", "1,2,300", ""])
def test_what_is_not_a_colour_names_the_option(text):
    with pytest.raises(OptionError, match="--background"):
        parse_colour(text)
