"""Pods probe: how many pods of a label selector are Ready, as the Kubernetes API says.

The value of a sample is the number of Ready pods (terminating ones do not count). A sample
passes while at least ``min_ready`` are Ready; without ``min_ready``, as many as the first
sample that found any (the deployment as it stood before the fault). So a deleted pod fails
the probe until its replacement is Ready, and the run's detection and recovery times
(metrics.md) are measured on the cluster's own account of readiness.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..platforms import kubernetes as k8s
from . import register
from .base import Probe, ProbeModel, Sample, Stopwatch


class PodsProbeSpec(ProbeModel):
    namespace: str = Field("default", min_length=1)
    selector: str = Field("", description="A label selector (key=value,...); empty: every pod of the namespace.")
    kubeconfig: str | None = Field(None, description="Default: $KUBECONFIG, else ~/.kube/config.")
    context: str | None = None


class PodsExpect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_ready: int | None = Field(
        None, ge=0, description="Ready pods needed; default: as many as the first sample found.")


@register
class PodsProbe(Probe[PodsProbeSpec, PodsExpect]):
    kind = "pods"

    _api: Any = None
    _want: int | None = None

    async def start(self) -> None:
        self._api = k8s.core(k8s.api_client(k8s.kubeconfig_path(self.spec.kubeconfig), self.spec.context))
        self._want = self.expect.min_ready

    def _check(self) -> Sample:
        watch = Stopwatch()
        pods = self._api.list_namespaced_pod(
            self.spec.namespace, label_selector=self.spec.selector, _request_timeout=self.timeout).items
        ready = sum(1 for p in pods if k8s.is_ready(p))
        if self._want is None:
            if not ready:
                return Sample(False, 0, watch.elapsed(), f"no Ready pod matches {self.spec.selector!r} "
                              f"in namespace {self.spec.namespace!r} ({len(pods)} not Ready)")
            self._want = ready
        if ready < self._want:
            return Sample(False, ready, watch.elapsed(), f"{ready} of {self._want} pods Ready")
        return Sample(True, ready, watch.elapsed())

    async def sample(self) -> Sample:
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._check), self.timeout + 1)
        except TimeoutError:
            return Sample(False, None, self.timeout, f"the API server did not answer within {self.timeout:g}s")
        except Exception as exc:
            why = str(getattr(exc, "reason", "") or exc).strip().splitlines()
            return Sample(False, None, None, f"{type(exc).__name__}: {why[0] if why else ''}")
