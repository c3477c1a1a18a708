"""Retrieval, without HTTP: UIDs resolved to instances (resolver.py), frames as stored or
transcoded (frames.py), Part 10 objects streamed (part10_stream.py), metadata bodies
(metadata.py), bulk data (bulk.py); service.py's :class:`Retrieval` is what the routes call."""
