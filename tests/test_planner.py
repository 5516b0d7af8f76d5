from pyramidd import morton, planner
from pyramidd.grid import Grid


def test_builder_level_gives_each_worker_several_subtrees():
    g = Grid(16384, 16384, 254, 1)  # 65x65 tiles at the top
    for workers in (1, 2, 4, 8):
        p = planner.plan(g, workers)
        want = workers * planner.SUBTREES_PER_WORKER
        assert planner.work_units(g, p.builder_level) >= want
        # and it is the deepest such level: one level lower has too few
        assert planner.work_units(g, p.builder_level - 1) < want


def test_slivers_do_not_count_as_whole_subtrees():
    # 16384 = 2 x 8128 + 128: at the level of 8128-pixel subtrees there are nine
    # roots, five of them slivers, so two workers get subtrees half as wide.
    g = Grid(16384, 16384, 254, 1)
    p = planner.plan(g, 2)
    assert g.tile_size * g.scale(p.builder_level) == 4064
    assert len(p.subtrees) == 25


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


def test_subtree_tiles_count_every_tile_from_the_builder_level_up():
    for g in (Grid(16384, 16384, 254, 1), Grid(5000, 3000, 254, 1), Grid(32768, 1000, 256)):
        p = planner.plan(g, 2)
        below = sum(c * r for c, r in map(g.tiles_across, range(g.min_level, p.builder_level)))
        assert below + sum(planner.subtree_tiles(g, k) for k in p.subtrees) == g.tile_count()


def test_a_sliver_subtree_weighs_a_few_tiles_a_level():
    g = Grid(32768, 32768, 254, 1)  # 130x130 tiles: four subtrees 32 tiles wide, then 2
    p = planner.plan(g, 2)
    tiles = sorted(planner.subtree_tiles(g, k) for k in p.subtrees)
    whole = sum(4**d for d in range(6))  # 32x32 tiles at the top, 1 at the root
    sliver = 2 * 32 + 16 + 8 + 4 + 2 + 1  # two tiles wide at the top, one below
    assert tiles == [2 * 2 + 5] + [sliver] * 8 + [whole] * 16
