"""The server side: the jupyter_server extension, its REST API and the kernel provisioner.

Everything here runs in the process that serves notebooks and launches kernels:
:mod:`.app` wires the flow (:mod:`bifrost_ext.service`) into jupyter_server,
:mod:`.api_handlers` is the REST API, :mod:`.provisioner` installs before a kernel starts,
:mod:`.credentials` gives each kernel its own secret, :mod:`.events` and :mod:`.recycle`
keep several servers and their running kernels in step.
"""
