"""The real test cluster (`kube`, tests/support/kube) for the deployment tests: the examples
are applied to it, and the image's operator and the RBAC proof run against it."""

from tests.support.kube import kube_fixture  # noqa: F401  (registers the fixture)
