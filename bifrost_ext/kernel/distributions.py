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
