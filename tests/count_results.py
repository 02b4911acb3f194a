"""Counts individual GoogleTest cases from Bazel's test XML.

Usage: count_results.py TESTLOGS_DIR BAZEL_LOG //pkg:target...

Prints per-target lines for anything that failed or ran nothing, then the closing line
'N passed, N failed[, N skipped]'. A target without a readable test.xml (it did not
build, or crashed before writing one) counts as one failed case, so a broken target
can never disappear from the count. Exit status: 0 only if nothing failed and at least
one case passed.
"""

import glob
import os
import re
import sys
import xml.etree.ElementTree as ET


def target_dir(testlogs, label):
    package, _, name = label.lstrip("/").partition(":")
    return os.path.join(testlogs, package, name)


def count_xml(path):
    passed = failed = skipped = 0
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif (case.find("skipped") is not None
              or case.get("result") in ("skipped", "suppressed")
              or case.get("status") == "notrun"):
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def latest_xmls(directory):
    """The test.xml files of the target's last run: the one at the top of its directory
    (one run), or those in its run_N_of_M / shard_N_of_M folders (--runs_per_test,
    sharding), whichever was written last. Bazel leaves the other kind behind from an
    earlier invocation; counting it too would report old results as new."""
    top = os.path.join(directory, "test.xml")
    nested = sorted(glob.glob(os.path.join(directory, "*", "test.xml")))
    if not os.path.exists(top):
        return nested
    if nested and max(os.path.getmtime(x) for x in nested) > os.path.getmtime(top):
        return nested
    return [top]


def main(argv):
    testlogs, bazel_log, labels = argv[1], argv[2], argv[3:]
    with open(bazel_log, errors="replace") as f:
        not_run = set(re.findall(r"^(//\S+)\s+(?:FAILED TO BUILD|NO STATUS)", f.read(), re.M))
    total_passed = total_failed = total_skipped = 0
    if not labels:
        print("no test targets found")
    for label in labels:
        if label in not_run:
            print(f"{label}: did not build or did not run: counted as failed")
            total_failed += 1
            continue
        xmls = latest_xmls(target_dir(testlogs, label))
        if not xmls:
            print(f"{label}: no test.xml (did not build or did not run): counted as failed")
            total_failed += 1
            continue
        passed = failed = skipped = 0
        for path in xmls:
            try:
                p, f, s = count_xml(path)
            except ET.ParseError as e:
                print(f"{label}: unreadable {path}: {e}: counted as failed")
                p, f, s = 0, 1, 0
            passed, failed, skipped = passed + p, failed + f, skipped + s
        if passed + failed + skipped == 0:
            print(f"{label}: ran no test case: counted as failed")
            failed = 1
        if failed:
            print(f"{label}: {failed} failed")
        if skipped:
            print(f"{label}: {skipped} skipped")
        total_passed += passed
        total_failed += failed
        total_skipped += skipped
    line = f"{total_passed} passed, {total_failed} failed"
    if total_skipped:
        line += f", {total_skipped} skipped"
    print(line)
    return 0 if total_failed == 0 and total_passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
