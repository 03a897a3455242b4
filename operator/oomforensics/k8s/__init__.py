"""The Kubernetes edge: CRD spec model, status and conditions, kopf handlers."""
