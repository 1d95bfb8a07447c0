"""Ready-made plugins, each enabled by naming its module in the ``plugins`` setting.

- :mod:`.allow_deny`: which packages users may install, from a TOML policy file;
- :mod:`.audit`: every change of the requirements as one JSON line.

``README.md`` beside them says how to enable and configure each.
"""
