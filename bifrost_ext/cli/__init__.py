"""``jupyter bifrost``: the operator's command line (:mod:`.main`), on the same flow as the
server (:mod:`bifrost_ext.service`)."""
