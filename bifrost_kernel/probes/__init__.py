"""Programs the build engine runs in a kernel's interpreter, each a file of its own.

request → requirements → installer → **package directory** → store → cache → kernels.

A build asks the kernel interpreter what it runs on (:mod:`.kernel_runtime`), whether a new
directory first on its path still lets it start (:mod:`.import_check`), and has it compile
the bytecode its imports will read (:mod:`.compile_modules`). That interpreter may be another
Python in another environment, where neither bifrost_ext nor this package is importable, so
each program is run as a file (``python -I <file>``: nothing of the server's environment on
its path) and imports the standard library alone, not even its neighbours here
(``tests/test_kernel_side.py`` checks both). The constants below are what the engine runs.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent

#: Prints the kernel's runtime distributions and marker values, as JSON.
KERNEL_RUNTIME = str(_HERE / "kernel_runtime.py")
#: Imports the kernel's first modules; prints the top-level names they looked up.
IMPORT_CHECK = str(_HERE / "import_check.py")
#: Compiles the modules named on its input, for this interpreter.
COMPILE_MODULES = str(_HERE / "compile_modules.py")
