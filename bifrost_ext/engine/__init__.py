"""The build engine: from a requirements record to a complete environment kernels can run on.

request → requirements → **installer → package directory** → store → cache → kernels.

:mod:`.packagedir` drives a build (stage, clone, check, switch, collect) with
:mod:`.installer` (uv or pip, one class each in :mod:`.tools`), :mod:`.delta` (the clone
that shares its files),
:mod:`.protection` and :mod:`.shadowing` (what a build may not break), :mod:`.interpreter`
(which Python the kernels run), :mod:`.failures` (what a failed installer run means) and
:mod:`.process` (the one way any of them starts a program).
Nothing here knows a store, a cache or a server.
"""
