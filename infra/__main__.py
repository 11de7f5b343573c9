"""pgha: a replicated PostgreSQL cluster behind HAProxy, a Redis cache and an API.

This module only picks the wiring: everything on one Docker engine (infra/single_host.py),
or, with `pgha:hosts`, spread over several (infra/multihost.py). Every config read is in
`config.py`; output names are in `outputs.py`.
"""

from infra import config, multihost, single_host

cfg = config.load()
if cfg.multihost is None:
    single_host.deploy(cfg)
else:
    multihost.deploy(cfg)
