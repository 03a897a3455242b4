"""The real one-node cluster of hack/cluster (`kube`, session-scoped, shared between the test
sessions that run at once), registered once for every module here."""

from tests.support.kube import kube_fixture  # noqa: F401  (registers the fixture)
