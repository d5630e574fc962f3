"""What runs in a viewer's dashboard kernel: the generic dashboard (``view``) and its
notebook (``generic.ipynb``). The Voila process that serves them is the owner's
(``p2p2p.owner.voila``)."""
