"""The bottom layer: contracts every other layer builds on, importing only the standard library and numpy.

``atomic`` (the one way to write a file), ``errors`` (the typed errors the CLI and the service
map to exit codes and HTTP statuses), ``registry`` (named components with their metadata),
``bits`` (packed codes, Hamming distances), ``ranking`` (the stable tie rule and the top-k vote)
and ``hasher`` (the ``ImageHasher`` protocol and the loaders of saved hashers).
"""
