"""The one Logger of the package; its service name and level come from POWERTOOLS_* variables.

No Powertools Tracer: its X-Ray SDK builds botocore clients and patches libraries at import, which cost more than a
whole ``import boto3`` + one client on every cold start (docs/benchmarks.md, figure 1). X-Ray still traces every
execution: ``Tracing: Active`` on the functions and the state machines (template.yaml) makes Lambda and Step
Functions send their own segments, so the service map and each invocation's duration, cold start and errors are
there. What is lost is the subsegment per boto3 call and per handler inside an invocation; the JSON logs carry the
step's calls and errors instead (docs/observability.md).
"""

from aws_lambda_powertools import Logger

logger = Logger()
