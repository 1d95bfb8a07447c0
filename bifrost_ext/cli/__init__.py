"""``jupyter bifrost``: the operator's command line (:mod:`.main`) and its export formats
(:mod:`.exporters`), on the same flow as the server (:mod:`bifrost_ext.service`)."""
