"""What runs in a viewer's dashboard kernel: the generic dashboard (``view``), its
notebook (``generic.ipynb``), and the views a viewer explores a table through
(``explore``: filters, sort and pages as checked, bound SQL). The Voila process that
serves them is the owner's (``p2p2p.owner.voila``)."""
