"""The networks, one module each: ``<name>.py`` defines ``build() -> keras.Model``.

The file's name is the model's name in ``params.yaml`` (``models.<name>``) and in every output
(``models/<name>.keras``, ``reports/*/<name>/``). ``train@<name>`` depends on its own file and
on the shared blocks of :mod:`stages.models`, so editing one network retrains that network
only. A new model is a new file here and its entry in ``params.yaml``; ``tests/test_extend.py``
adds one.
"""
