"""JUnit XML: one test case per hypothesis assertion, so CI systems show each one."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..analysis.hypothesis import bound_text
from ..analysis.model import Analysis
from ..experiment.names import format_value


def render(a: Analysis) -> str:
    cases = a.judgement.assertions
    suite = ET.Element(
        "testsuite",
        name=f"chaoslab: {a.title or 'run'}",
        tests=str(max(1, len(cases))),
        failures=str(sum(1 for c in cases if not c.passed)),
        errors="0" if a.valid else "1",
        time=f"{a.phases.t_end:.3f}",
    )
    if not a.valid:
        case = ET.SubElement(suite, "testcase", classname="chaoslab.run", name="validity")
        ET.SubElement(case, "error", message=str(a.validity.invalid_reason))
    for c in cases:
        case = ET.SubElement(suite, "testcase", classname="chaoslab.hypothesis", name=c.name)
        measured = format_value(c.name, c.value) if c.value is not None else f"n/a ({c.note})"
        bound = bound_text(c.name, c.bound)
        if not c.passed:
            failure = ET.SubElement(case, "failure", message=f"{c.name} = {measured}, expected {bound}")
            failure.text = "\n".join(a.findings)
        else:
            ET.SubElement(case, "system-out").text = f"{c.name} = {measured} ({bound})"
    if not cases and a.valid:
        case = ET.SubElement(suite, "testcase", classname="chaoslab.run", name="run")
        ET.SubElement(case, "skipped", message="the experiment has no hypothesis")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
