"""Chaos Toolkit experiments, run by chaoslab as they are (`chaoslab run experiment.json`) or
turned into chaoslab YAML (`chaoslab import ctk FILE`).

What maps to what (docs/migrating.md has the table):
- ``steady-state-hypothesis.probes`` -> probes sampled all through the run; the hypothesis is
  that each holds for every sample of the baseline (Chaos Toolkit's "before") and in the recovery
  window (its "after"), instead of two single checks;
- ``http`` and ``process`` probes with an int / list-of-ints tolerance (status or exit code);
- ``method`` actions -> steps on one timeline, ``pauses.before/after`` moving the clock;
  ``process`` -> command.run, ``http`` -> http.request, ``python`` -> python.call;
- chaostoolkit-toxiproxy's toxic actions -> chaoslab's proxy faults on the same proxy, lasting
  until their ``delete_toxic`` (in the method or the rollbacks) or the end of the method, so the
  ledger reverts them on every path; disable/enable_proxy -> network.down;
- ``rollbacks`` (process, http) -> rollbacks; ``configuration`` and ``secrets`` (values or
  ``{type: env, key}``) -> ``${key}`` substitution, read from the environment at load time.
Anything else is refused with the file, line and field, before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InputError
from ..source import Document, InputErrors, Loc

BASELINE = 5.0
"""Seconds of steady-state sampling before the first action (Chaos Toolkit checks once)."""
RECOVERY = 10.0
TOXI_TOXIC = "chaostoxi.toxic.actions"
TOXI_PROXY = "chaostoxi.proxy.actions"

# chaostoolkit-toxiproxy function -> (chaoslab fault, {its argument: (our parameter, unit suffix)})
_TOXIC_FUNCS: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "create_latency_toxic": ("network.latency", {"latency": ("latency", "ms"), "jitter": ("jitter", "ms")}),
    "create_bandwith_degradation_toxic": ("network.bandwidth", {"rate": ("rate", "KB")}),
    "create_slow_connection_close_toxic": ("network.slow_close", {"delay": ("delay", "ms")}),
    "create_timeout_toxic": ("network.blackhole", {"timeout": ("timeout", "ms")}),
    "create_slicer_toxic": ("network.slicer", {"average_size": ("average_size", ""),
                                               "size_variation": ("size_variation", ""), "delay": ("delay", "us")}),
    "create_limiter_toxic": ("network.limit_data", {"bytes_limit": ("bytes", "")}),
}
# Toxiproxy toxic type (chaostoxi's generic create_toxic) -> the same table's entry
_TOXIC_TYPES = {"latency": "create_latency_toxic", "bandwidth": "create_bandwith_degradation_toxic",
                "slow_close": "create_slow_connection_close_toxic", "timeout": "create_timeout_toxic",
                "slicer": "create_slicer_toxic", "limit_data": "create_limiter_toxic"}


def is_ctk(data: Any) -> bool:
    """A Chaos Toolkit experiment: it has a steady-state hypothesis, or its method is made of
    activities (``type``/``provider``) rather than chaoslab steps (``fault``)."""
    if not isinstance(data, dict):
        return False
    if "steady-state-hypothesis" in data:
        return True
    method = data.get("method")
    return isinstance(method, list) and any(
        isinstance(a, dict) and "fault" not in a and ("provider" in a or a.get("type") in ("action", "probe"))
        for a in method)


class _Translator:
    def __init__(self, doc: Document, environ: Mapping[str, str]) -> None:
        self.doc = doc
        self.environ = environ
        self.errors: list[InputError] = []
        self.vars: dict[str, str] = {}
        self.marks: dict[Loc, tuple[int, int]] = {}
        self.out: dict[str, Any] = {}
        self.probes: dict[str, Any] = {}
        self.targets: dict[str, Any] = {}
        self.steps: list[dict[str, Any]] = []
        self.rollbacks: list[dict[str, Any]] = []
        self.open: dict[tuple[str, str], int] = {}  # (proxy, toxic name) -> step index
        self.t = BASELINE

    # -- helpers -----------------------------------------------------------------------------
    def fail(self, loc: Loc, message: str) -> None:
        self.errors.append(self.doc.error(loc, message))

    def mark(self, new: Loc, old: Loc) -> None:
        line, col, _ = self.doc.where(old)
        if line is not None:
            self.marks[new] = (line, col or 1)

    def sub(self, value: Any) -> Any:
        """Chaos Toolkit's ``${key}``: configuration and secret values, in every string."""
        if isinstance(value, str):
            for key, v in self.vars.items():
                value = value.replace("${" + key + "}", v)
            return value
        if isinstance(value, list):
            return [self.sub(v) for v in value]
        if isinstance(value, dict):
            return {k: self.sub(v) for k, v in value.items()}
        return value

    def resolve(self, loc: Loc, value: Any) -> str | None:
        if isinstance(value, dict):
            if value.get("type") != "env" or not isinstance(value.get("key"), str):
                self.fail(loc, "only values and {type: env, key: NAME} are supported")
                return None
            key = value["key"]
            if key in self.environ:
                return self.environ[key]
            if "default" in value:
                return str(value["default"])
            self.fail(loc, f"environment variable {key} is not set (and there is no default)")
            return None
        return str(value)

    # -- parts ---------------------------------------------------------------------------------
    def configuration(self, data: dict[str, Any]) -> None:
        conf = data.get("configuration") or {}
        if not isinstance(conf, dict):
            self.fail(("configuration",), "expected a mapping")
            conf = {}
        for key, value in conf.items():
            v = self.resolve(("configuration", key), value)
            if v is not None:
                self.vars[key] = v
        secrets = data.get("secrets") or {}
        for scope, entries in (secrets.items() if isinstance(secrets, dict) else []):
            for key, value in (entries.items() if isinstance(entries, dict) else []):
                v = self.resolve(("secrets", scope, key), value)
                if v is not None:
                    self.vars.setdefault(key, v)

    def probe(self, loc: Loc, activity: dict[str, Any], tolerance: Any) -> dict[str, Any] | None:
        provider = activity.get("provider")
        if not isinstance(provider, dict):
            self.fail((*loc, "provider"), "a probe needs a provider")
            return None
        kind = provider.get("type")
        codes: list[int] | None = None
        if tolerance is not None:
            if isinstance(tolerance, bool) or not (isinstance(tolerance, int) or (
                    isinstance(tolerance, list) and all(isinstance(x, int) and not isinstance(x, bool)
                                                        for x in tolerance))):
                self.fail((*loc, "tolerance"), "only a status or exit code (or a list of them) is supported "
                                                "as a tolerance; use a chaoslab probe's expect for more")
                return None
            codes = [tolerance] if isinstance(tolerance, int) else list(tolerance)
        if kind == "http":
            spec: dict[str, Any] = {"url": self.sub(provider.get("url"))}
            if "method" in provider:
                spec["method"] = str(provider["method"]).upper()
            if "headers" in provider:
                spec["headers"] = self.sub(provider["headers"])
            if provider.get("arguments") is not None:
                spec["body"] = self.sub(provider["arguments"])
            probe: dict[str, Any] = {"http": spec}
            if codes:
                probe["expect"] = {"status": codes if len(codes) > 1 else codes[0]}
            if "timeout" in provider:
                probe["timeout"] = provider["timeout"]
            return probe
        if kind == "process":
            argv = self._argv(loc, provider)
            probe = {"command": {"argv": argv}}
            if codes:
                if len(codes) > 1:
                    self.fail((*loc, "tolerance"), "a process probe takes one exit code")
                    return None
                probe["expect"] = {"exit_code": codes[0]}
            return probe
        self.fail((*loc, "provider", "type"), f"{kind!s} probes cannot be mapped (supported: http, process)")
        return None

    def _argv(self, loc: Loc, provider: dict[str, Any]) -> list[str]:
        return [str(self.sub(provider.get("path"))), *self._args(loc, provider.get("arguments"))]

    def _args(self, loc: Loc, args: Any) -> list[str]:
        if args is None:
            return []
        if isinstance(args, str):
            return [str(self.sub(a)) for a in args.split()]
        if isinstance(args, list):
            return [str(self.sub(a)) for a in args]
        self.fail((*loc, "provider", "arguments"), "process arguments must be a string or a list")
        return []

    def steady_state(self, data: dict[str, Any]) -> None:
        ssh = data.get("steady-state-hypothesis")
        if ssh is None:
            return
        probes = ssh.get("probes") if isinstance(ssh, dict) else None
        for i, activity in enumerate(probes or []):
            loc: Loc = ("steady-state-hypothesis", "probes", i)
            name = self.name(activity, f"steady-{i}")
            probe = self.probe(loc, activity, activity.get("tolerance"))
            if probe is not None:
                self.probes[name] = probe
                self.mark(("probes", name), loc)
                self.out.setdefault("hypothesis", {})
                self.out["hypothesis"][f"probe.{name}.availability.baseline"] = {"min": 1.0}
                self.out["hypothesis"][f"probe.{name}.availability.recovery"] = {"min": 1.0}

    @staticmethod
    def name(activity: Any, default: str) -> str:
        raw = str(activity.get("name") or default) if isinstance(activity, dict) else default
        clean = "".join(c if c.isalnum() or c in "-_" else "-" for c in raw).strip("-")
        return clean or default

    def method(self, data: dict[str, Any]) -> None:
        for i, activity in enumerate(data.get("method") or []):
            loc: Loc = ("method", i)
            if not isinstance(activity, dict):
                self.fail(loc, "expected an activity (a mapping)")
                continue
            if "ref" in activity:
                self.fail((*loc, "ref"), "references to other activities are not supported; repeat the activity")
                continue
            pauses = activity.get("pauses") or {}
            self.t += float(pauses.get("before", 0) or 0)
            if activity.get("type") == "probe":
                name = self.name(activity, f"method-probe-{i}")
                probe = self.probe(loc, activity, None)
                if probe is not None:
                    probe["signal"] = False
                    self.probes[name] = probe
            else:
                self.action(loc, activity)
            self.t += float(pauses.get("after", 0) or 0)

    def action(self, loc: Loc, activity: dict[str, Any], rollback: bool = False) -> None:
        provider = activity.get("provider")
        if not isinstance(provider, dict):
            self.fail((*loc, "provider"), "an action needs a provider")
            return
        kind = provider.get("type")
        args = self.sub(provider.get("arguments") or {})
        if kind == "python" and provider.get("module") in (TOXI_TOXIC, TOXI_PROXY):
            self.toxiproxy(loc, str(provider.get("func")), args if isinstance(args, dict) else {}, rollback)
            return
        if kind == "process":
            argv = self._argv(loc, provider)
            if rollback:
                self.rollbacks.append({"command": argv})
            else:
                self.step(loc, {"fault": "command.run", "argv": argv})
            return
        if kind == "http":
            spec: dict[str, Any] = {"url": self.sub(provider.get("url")),
                                    "method": str(provider.get("method", "GET")).upper()}
            if provider.get("headers"):
                spec["headers"] = self.sub(provider["headers"])
            if provider.get("arguments") is not None:
                spec["body"] = args
            if rollback:
                self.rollbacks.append({"http": spec})
            else:
                self.step(loc, {"fault": "http.request", **spec})
            return
        if kind == "python" and not rollback:
            self.step(loc, {"fault": "python.call", "function": f"{provider.get('module')}:{provider.get('func')}",
                            "arguments": args if isinstance(args, dict) else {}})
            return
        where = "rollbacks" if rollback else "actions"
        self.fail((*loc, "provider", "type"), f"{kind!s} {where} cannot be mapped "
                                              f"(supported: process, http{', python' if not rollback else ''}, "
                                              "chaostoolkit-toxiproxy)")

    def step(self, loc: Loc, step: dict[str, Any]) -> int:
        step["at"] = round(self.t, 3)
        self.steps.append(step)
        self.mark(("method", len(self.steps) - 1), loc)
        return len(self.steps) - 1

    def proxy_target(self, name: str) -> str:
        target = f"proxy-{name}"
        url = self.vars.get("toxiproxy_url") or (
            f"http://{self.vars.get('toxiproxy_host', '127.0.0.1')}:{self.vars.get('toxiproxy_port', '8474')}")
        self.targets[target] = {"proxy": name, "api": url}
        return target

    def toxiproxy(self, loc: Loc, func: str, args: dict[str, Any], rollback: bool) -> None:
        if func == "create_toxic":
            toxic_type = str(args.get("toxic_type"))
            if toxic_type not in _TOXIC_TYPES:
                self.fail((*loc, "provider", "arguments", "toxic_type"), f"toxic type {toxic_type!r} cannot be mapped")
                return
            func = _TOXIC_TYPES[toxic_type]
            args = {**args, **(args.get("attributes") or {})}
            if toxic_type == "limit_data" and "bytes" in args:
                args["bytes_limit"] = args["bytes"]
        if func in _TOXIC_FUNCS and not rollback:
            fault, params = _TOXIC_FUNCS[func]
            proxy, toxic = str(args.get("for_proxy")), str(args.get("toxic_name"))
            step: dict[str, Any] = {"fault": fault, "target": self.proxy_target(proxy)}
            for arg, (param, unit) in params.items():
                if arg in args:
                    step[param] = f"{args[arg]}{unit}" if unit else args[arg]
            for extra in ("stream", "toxicity"):
                if extra in args:
                    step[extra] = args[extra]
            self.open[(proxy, toxic)] = self.step(loc, step)
        elif func == "delete_toxic":
            self.close((str(args.get("for_proxy")), str(args.get("toxic_name"))))
        elif func == "disable_proxy" and not rollback:
            name = str(args.get("proxy_name"))
            self.open[(name, "<disabled>")] = self.step(loc, {"fault": "network.down", "target": self.proxy_target(name)})
        elif func == "enable_proxy":
            self.close((str(args.get("proxy_name")), "<disabled>"))
        elif func == "reset":
            for key in list(self.open):
                self.close(key)
        else:
            self.fail((*loc, "provider", "func"), f"chaostoolkit-toxiproxy's {func} cannot be mapped "
                                                  "(supported: create_*_toxic, delete_toxic, disable/enable_proxy, reset)")

    def close(self, key: tuple[str, str]) -> None:
        index = self.open.pop(key, None)
        if index is not None:
            step = self.steps[index]
            step["duration"] = round(max(self.t - step["at"], 0.1), 3)

    def rollback_section(self, data: dict[str, Any]) -> None:
        for i, activity in enumerate(data.get("rollbacks") or []):
            if isinstance(activity, dict):
                self.action(("rollbacks", i), activity, rollback=True)
        for key in list(self.open):  # never deleted: reverted at the end of the method
            self.close(key)

    def translate(self) -> Document:
        data = self.doc.data
        self.configuration(data)
        self.out["title"] = str(data.get("title") or "Chaos Toolkit experiment")
        self.mark(("title",), ("title",))
        if data.get("description"):
            self.out["description"] = str(data["description"])
        if isinstance(data.get("tags"), list):
            self.out["tags"] = [str(t) for t in data["tags"]]
        self.steady_state(data)
        self.method(data)
        self.rollback_section(data)
        for key in ("controls", "extensions", "runtime"):
            if key in data:
                self.fail((key,), f"{key} cannot be mapped to chaoslab; remove it or run the file with `chaos run`")
        if self.errors:
            raise InputErrors(sorted(self.errors, key=lambda e: (e.line or 0, e.column or 0)))
        if not self.steps:
            self.fail(("method",), "the method has no action chaoslab can run")
            raise InputErrors(self.errors)
        hypothesis = self.out.pop("hypothesis", None)
        self.out.update({"targets": self.targets, "probes": self.probes, "method": self.steps,
                         "recovery": RECOVERY, "rollbacks": self.rollbacks})
        if hypothesis:
            self.out["hypothesis"] = hypothesis
        new = Document(path=self.doc.path, data=self.out)
        # errors found later (by the model) still point into the Chaos Toolkit file
        new.value_marks.update(self.marks)
        new.value_marks[()] = (1, 1)
        return new


def translate(doc: Document, environ: Mapping[str, str]) -> Document:
    """The chaoslab experiment a Chaos Toolkit document means; ``InputErrors`` for what cannot be
    mapped, at its place in the Chaos Toolkit file."""
    return _Translator(doc, environ).translate()
