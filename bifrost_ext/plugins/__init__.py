"""Plugins: where an operator's code can refuse, watch or react, and the ones bifrost ships.

request → **validate hook** → installer → store → **watching hooks** → cache → kernels.

- :mod:`.hookspecs`: the hook specifications (``from bifrost_ext import hookimpl``);
- :mod:`.manager`: where plugins come from and how they are called;
- ready-made plugins, each enabled by naming its module in the ``plugins`` setting:
  :mod:`.allow_deny` (which packages users may install, from a TOML policy file) and
  :mod:`.audit` (every change of the requirements as one JSON line).

``README.md`` beside them says how to enable and configure each.
"""
