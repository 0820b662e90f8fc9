"""``fargate-app``: the provisioner's command line — the sandbox (``sandbox run``/``serve``) and a deployed stack
(``request``/``status``/``teardown``). It imports production code and the sandbox, never the other way round."""
