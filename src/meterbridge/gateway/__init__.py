"""meterbridge.gateway: configuration, sources, validation and the pipeline that stores first, then publishes.

``config`` (the YAML file, validated), ``sources`` (meters and buses as async streams, adapters to the
drivers), ``validate`` (plausibility, counters, units, quality bands), ``pipeline`` (the ``Gateway``) and
``runner`` (everything assembled from a configuration). See ARCHITECTURE.md.
"""

__all__: list[str] = []
