"""Waiting for a CustomResourceDefinition the way kubectl users do: until it is Established
and its group version serves the resource."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.waiting import eventually


def wait_for_crd(http: httpx.Client, name: str, timeout: float = 30.0) -> dict[str, Any]:
    """Wait until CRD `name` is Established and its group version lists it; returns the CRD.

    Right after a create, the CRD's ``status.conditions`` is ``null``, not a list.
    """
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"

    def established() -> dict[str, Any] | None:
        crd: dict[str, Any] = http.get(path).raise_for_status().json()
        conditions = (crd.get("status") or {}).get("conditions") or []
        ok = any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
        return crd if ok else None

    crd = eventually(established, timeout=timeout, what=f"CRD {name} Established")
    group = crd["spec"]["group"]
    plural = crd["spec"]["names"]["plural"]
    for version in (v["name"] for v in crd["spec"]["versions"] if v["served"]):

        def served(version: str = version) -> bool:
            response = http.get(f"/apis/{group}/{version}")
            names = {r["name"] for r in response.json()["resources"]} if response.is_success else ()
            return plural in names

        eventually(served, timeout=timeout, what=f"{plural}.{group}/{version} served")
    return crd
