"""pgha's test suite: unit tests of pure logic, service tests, and e2e tests of a deployed stack."""
