"""The system's answer to malformed payloads (``load.http.poison``; docs/poison.md).

Per defect kind, from the history's tags and the final read (``verify.json``: ``ids`` is what
the system stores as valid, ``dead_letters`` what it set aside):

- rejected: the edge answered with an explicit refusal (the client was told no);
- dead_lettered: acknowledged, then set aside in the dead-letter store;
- stored_as_valid: present among the valid records: the defect got through (a violation);
- lost: acknowledged, yet neither stored nor dead-lettered (a violation);
- unresolved: no answer (timeout, never sent, cut) and found nowhere: allowed.

Without a dead-letter read, acknowledged records missing from the store cannot be told
apart from lost ones: ``lost`` is then unknown (None), never 0.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..journal import write_id
from .figures import Figures

CHECKED, UNKNOWN = "checked", "unknown"
COUNTS = ("sent", "rejected", "acknowledged", "dead_lettered", "stored_as_valid", "lost", "unresolved")


def poisoned(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [op for op in ops if op.get("poison")]


def _refused(op: dict[str, Any]) -> bool:
    if "refused" in op:
        return bool(op["refused"])
    return op.get("outcome") == "fail" and op.get("status") is not None


def check(ops: list[dict[str, Any]], verify: dict[str, Any] | None) -> dict[str, Any] | None:
    bad = poisoned(ops)
    if not bad:
        return None
    if verify is None or not verify.get("ok"):
        why = "no final read was recorded" if verify is None else f"the final read failed: {verify.get('error')}"
        return {"status": UNKNOWN, "reason": why, "kinds": {}, "stored_as_valid": None, "lost": None}
    stored = Counter(str(i) for i in verify.get("ids") or [])
    dead_list = verify.get("dead_letters")
    dead = None if dead_list is None else {str(i) for i in dead_list}
    kinds: dict[str, dict[str, Any]] = {}
    examples: dict[str, dict[str, list[str]]] = {}
    for op in bad:
        kind = str(op["poison"])
        row = kinds.setdefault(kind, dict.fromkeys(COUNTS, 0))
        ex = examples.setdefault(kind, {"stored_as_valid": [], "lost": []})
        wid = write_id(op)
        if op.get("t_sent") is not None:
            row["sent"] += 1
        if stored[wid]:
            row["stored_as_valid"] += 1
            ex["stored_as_valid"].append(wid)
        elif op.get("ack"):
            row["acknowledged"] += 1
            if dead is None:
                row["lost"] = None
            elif wid in dead:
                row["dead_lettered"] += 1
            else:
                if row["lost"] is not None:
                    row["lost"] += 1
                ex["lost"].append(wid)
        elif _refused(op):
            row["rejected"] += 1
        elif dead is not None and wid in dead:
            row["dead_lettered"] += 1
        else:
            row["unresolved"] += 1
        if op.get("ack") and stored[wid]:
            row["acknowledged"] += 1
    for kind, row in kinds.items():
        row["examples"] = {k: v[:5] for k, v in examples[kind].items() if v}
    lost_known = all(r["lost"] is not None for r in kinds.values())
    return {
        "status": CHECKED,
        "reason": None if dead is not None else "no dead-letter read (verify.dead_letters): lost is unknown",
        "kinds": dict(sorted(kinds.items())),
        "stored_as_valid": sum(r["stored_as_valid"] for r in kinds.values()),
        "lost": sum(r["lost"] for r in kinds.values()) if lost_known else None,
    }


def clean_view(ops: list[dict[str, Any]], verify: dict[str, Any] | None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The history and final read without the poisoned operations, for the data-loss checker:
    a malformed record's place is judged here, and a well-formed one that the system set aside
    as a dead letter is not lost (its place is the dead-letter store)."""
    bad = poisoned(ops)
    if not bad and (verify is None or not verify.get("dead_letters")):
        return ops, verify
    bad_ids = {write_id(op) for op in bad}
    clean = [op for op in ops if not op.get("poison")]
    if verify is None or not verify.get("ok"):
        return clean, verify
    ids = [i for i in verify.get("ids") or [] if str(i) not in bad_ids]
    ids += [i for i in verify.get("dead_letters") or [] if str(i) not in bad_ids]
    return clean, {**verify, "ids": ids}


def metrics(result: dict[str, Any] | None, missing: dict[str, str]) -> dict[str, Any]:
    """The hypothesis keys ``poison_*`` (None, with the reason in ``missing``, when unmeasured)."""
    keys = ("poison_stored_as_valid", "poison_lost", "poison_rejected", "poison_dead_lettered")
    if result is None or result["status"] != CHECKED:
        why = "the load has no poison" if result is None else f"unknown: {result['reason']}"
        missing.update(dict.fromkeys(keys, why))
        return dict.fromkeys(keys)
    rows = result["kinds"].values()
    out = {
        "poison_stored_as_valid": result["stored_as_valid"],
        "poison_lost": result["lost"],
        "poison_rejected": sum(r["rejected"] for r in rows),
        "poison_dead_lettered": sum(r["dead_lettered"] for r in rows),
    }
    if out["poison_lost"] is None:
        missing["poison_lost"] = str(result["reason"])
    return out


def figures(result: dict[str, Any] | None) -> Figures:
    out = Figures()
    out.values = metrics(result, out.missing)
    return out


def note_stall(result: dict[str, Any] | None, clean_lost: int | None) -> None:
    """Well-formed acknowledged records missing at the end of a poisoned run: the likely cause
    is a consumer stuck behind a malformed record (it never reached the ones after it)."""
    if result is not None and result["status"] == CHECKED:
        result["clean_lost"] = clean_lost
        result["stall_suspected"] = bool(clean_lost)


def findings(result: dict[str, Any] | None) -> list[str]:
    if result is None:
        return []
    if result["status"] != CHECKED:
        return [f"Malformed payloads: the system's answer is UNKNOWN: {result['reason']}."]
    out = []
    for kind, r in result["kinds"].items():
        line = (f"Malformed {kind}: {r['sent']} sent, {r['rejected']} rejected at the edge, "
                f"{r['dead_lettered']} dead-lettered, {r['stored_as_valid']} STORED AS VALID, "
                f"{'unknown' if r['lost'] is None else r['lost']} lost, {r['unresolved']} unresolved.")
        out.append(line)
        if r["stored_as_valid"]:
            out.append(f"Defect {kind} got through: {r['stored_as_valid']} malformed record(s) stored as valid "
                       f"(e.g. {', '.join(r['examples'].get('stored_as_valid', []))}).")
        if r["lost"]:
            out.append(f"{r['lost']} acknowledged malformed {kind} record(s) were LOST (neither stored nor "
                       f"dead-lettered; e.g. {', '.join(r['examples'].get('lost', []))}).")
    if result.get("stall_suspected"):
        out.append(f"{result['clean_lost']} well-formed acknowledged record(s) are missing too: the system may "
                   "have stalled behind a malformed one.")
    elif result.get("clean_lost") == 0:
        out.append("Every well-formed acknowledged record was stored: no stall behind the malformed ones.")
    if result["reason"]:
        out.append(f"Malformed payloads: {result['reason']}.")
    return out
