"""The build engine: from a requirements record to a complete environment kernels can run on.

request → requirements → **installer → package directory** → store → cache → kernels.

:mod:`.packagedir` holds a package directory's state and drives a build through its steps, one
module each: :mod:`.staging` (the installer runs, with :mod:`.installer`: uv or pip, one class
each in :mod:`.tools`),
:mod:`.delta` (the clone that shares its files), :mod:`.bytecode` and :mod:`.scripts`,
:mod:`.kernel_check` (the kernel check, failed builds remembered), :mod:`.switching` (switch,
collect, lock) and :mod:`.layout` (the names they give); :mod:`.purpose` says why a build runs.
:mod:`.dist_info` reads what an environment holds; :mod:`.protection` and :mod:`.shadowing` say
what a build may not break, :mod:`.interpreter` which Python the kernels run and
:mod:`.failures` what a failed installer run means; :mod:`.process` is the one way any of them
starts a program. Nothing here knows a store, a cache or a server.
"""
