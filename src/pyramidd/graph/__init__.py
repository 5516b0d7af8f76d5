"""Graph pyramids: laid-out graphs sharded into a quadtree of JSON tiles.

The build (:mod:`.build`) streams a graph source (:mod:`.sources`) through three
stages — read (:mod:`.read`), insert into a :class:`~.bags.GraphQuadtree` whose bags
are shed to disk under a memory budget, re-queue the objects of split leaves — then
writes one JSON file per leaf and sparsified files for the nodes above
(:mod:`.writer`, :mod:`.sparsify`) and the index last (:mod:`.index`). The query API
(:mod:`.api`) answers rectangle queries from the cached index (:mod:`.query`).
"""
