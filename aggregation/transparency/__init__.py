"""The public transparency page: what was shared under which agreement, and at what privacy cost.

:func:`~aggregation.transparency.page.build_transparency` gathers it from the ledger alone (the
registered agreements, the charges and publications made under them, the budget policy and the
head of the hash chain); :func:`~aggregation.transparency.page.write_site` writes it as a static,
self-contained site (``index.html`` with inline CSS and SVG charts, and ``transparency.json``):
no script, no font, no image and no style is loaded from anywhere. It never reads a released
data file, so it cannot show a released value.
"""
