"""What the companion notebook (``notebooks/introduccion_redes_convolucionales.py``, its
jupytext pair ``.ipynb``) calls, so that its cells stay a few lines each.

- :mod:`~intro_cnn.notebook.project`: the notebook's files, and the project root it works in;
- :mod:`~intro_cnn.notebook.status`: which pipeline outputs it reads are missing, in words;
- :mod:`~intro_cnn.notebook.images`: the library's figures as PNG cell outputs;
- :mod:`~intro_cnn.notebook.figures`: the few figures only the notebook draws;
- :mod:`~intro_cnn.notebook.results`: the pipeline's results, read with the stages' readers;
- :mod:`~intro_cnn.notebook.samples`: the made-up "photo" the digit recipe is shown on;
- :mod:`~intro_cnn.notebook.server`: Jupyter Lab on 127.0.0.1 (``make notebook``);
- :mod:`~intro_cnn.notebook.retrain`: the optional short retraining (``ENTRENAR = True``).

No stage imports this package. ``python -m intro_cnn.commands.notebook`` (``make notebook``)
serves the notebook.
"""
