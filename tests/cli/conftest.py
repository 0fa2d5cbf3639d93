"""`mechscope report` tests run the fake claim package defined once, beside the report tests."""

from tests.report.conftest import fake_claims_package  # noqa: F401  (a fixture, re-exported here)
