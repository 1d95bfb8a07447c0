"""Which distribution to install for a module that cannot be imported.

Used by :mod:`.missing` to offer ``%bifrost install <distribution>`` after an ``import`` of a
module that is not there. Most distributions install a module of their own name; this table
lists the common ones that do not. Where the list came from: the import names that differ
from their PyPI project among the most downloaded projects (pypistats / hugovk's "top PyPI
packages") and the data-science stack's usual imports, each checked against the project's
own ``top_level.txt`` or RECORD. Only top-level modules, and only where one project is the
obvious answer (``google`` or ``jose`` have several, so they are left to the module name).
Maintained by hand: add a line when a user meets another.
"""

from __future__ import annotations

import keyword
import re

#: A PEP 508 project name (the standard library's spelling of packaging's check: kernels
#: need not have packaging).
_PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
#: Longest module name answered; real ones are far shorter.
MAX_MODULE_LENGTH = 100

#: Top-level import name → the PyPI distribution that provides it.
MODULE_TO_DISTRIBUTION: dict[str, str] = {
    "attr": "attrs",
    "bs4": "beautifulsoup4",
    "Crypto": "pycryptodome",
    "cv2": "opencv-python",
    "dateutil": "python-dateutil",
    "docx": "python-docx",
    "dotenv": "python-dotenv",
    "fitz": "PyMuPDF",
    "git": "GitPython",
    "jwt": "PyJWT",
    "kafka": "kafka-python",
    "ldap": "python-ldap",
    "magic": "python-magic",
    "MySQLdb": "mysqlclient",
    "OpenSSL": "pyOpenSSL",
    "PIL": "pillow",
    "pptx": "python-pptx",
    "psycopg2": "psycopg2-binary",
    "serial": "pyserial",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "slugify": "python-slugify",
    "snappy": "python-snappy",
    "socks": "PySocks",
    "telegram": "python-telegram-bot",
    "usb": "pyusb",
    "win32api": "pywin32",
    "yaml": "PyYAML",
    "zmq": "pyzmq",
    "Levenshtein": "python-Levenshtein",
    "multipart": "python-multipart",
    "pkg_resources": "setuptools",
    "faiss": "faiss-cpu",
    "tensorflow_hub": "tensorflow-hub",
    "umap": "umap-learn",
}


def distribution_for(module: str) -> str:
    """The distribution to install for a missing top-level module: the table's, else its name."""
    return MODULE_TO_DISTRIBUTION.get(module, module)


def installable_distribution(module: str) -> str:
    """The distribution that installs the top-level ``module`` (:func:`distribution_for`),
    refusing (``ValueError``) a module that is not a plain Python identifier or whose name
    no distribution can have.

    The server answers the panel with this, so a notebook output names only a module and
    never what gets installed.
    """
    if len(module) > MAX_MODULE_LENGTH:
        raise ValueError(f"a module name is at most {MAX_MODULE_LENGTH} characters")
    if not (module.isascii() and module.isidentifier()) or keyword.iskeyword(module):
        raise ValueError("a module name is a Python identifier, such as sklearn")
    distribution = distribution_for(module)
    if not _PROJECT_NAME.match(distribution):
        raise ValueError(f"no distribution can be named {module!r}; install it by its name")
    return distribution
