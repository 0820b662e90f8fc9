"""The REST API in front of the state machines: ``routes`` speaks HTTP, ``executions`` speaks Step Functions."""
