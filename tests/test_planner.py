from pyramidd import morton, planner
from pyramidd.grid import Grid


def test_builder_level_gives_each_worker_several_subtrees():
    g = Grid(16384, 16384, 254, 1)  # 65x65 tiles at the top
    for workers in (1, 2, 4, 8):
        p = planner.plan(g, workers)
        assert len(p.subtrees) >= workers * planner.SUBTREES_PER_WORKER
        # and it is the deepest such level: one level lower has too few
        cols, rows = g.tiles_across(p.builder_level - 1)
        assert cols * rows < workers * planner.SUBTREES_PER_WORKER


def test_subtrees_are_in_morton_order_and_cover_the_level():
    g = Grid(5000, 3000, 254, 1)
    p = planner.plan(g, 2)
    codes = [morton.encode(k.col, k.row) for k in p.subtrees]
    assert codes == sorted(codes)
    cols, rows = g.tiles_across(p.builder_level)
    assert len(set(p.subtrees)) == cols * rows


def test_small_images_build_from_full_resolution_tiles():
    g = Grid(300, 200, 254, 1)
    p = planner.plan(g, 8)
    assert p.builder_level == g.top


def test_subtree_height_is_capped():
    g = Grid(1 << 20, 1 << 20, 256)
    p = planner.plan(g, 1)
    assert g.top - p.builder_level <= planner.MAX_SUBTREE_HEIGHT
