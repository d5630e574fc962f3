"""Sample stores and the demo: ``sales`` (small, for the quick start and tests),
``hospital`` (about a million rows, for the tours and the example dashboard) and
``demo`` (``p2p2p demo``: the hospital store shared from JupyterLab)."""
