"""The results page keeps runs of a protocol's current split and of an older split in separate, marked rows,
and reads every float method's query time beside coarse-to-fine hashing."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hashseek.data.protocols import get_protocol
from hashseek.eval.report import query_time_table, write_results_page
from hashseek.eval.runner import MethodSpec, cached_record, split_digest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import run_all  # noqa: E402


def _older(record: dict, **changes) -> dict:
    """The record as a run before the protocol held out validation images left it (no split digest)."""
    protocol = {k: v for k, v in record["protocol"].items() if k != "split_digest"}
    protocol["sizes"] = {"query": 12, "database": 24, "train": 24}
    return {**record, "protocol": protocol, "created": "2026-11-22T17:36:40+00:00", **changes}


def _rows(text: str, method: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"| {method} |")]


def test_page_marks_each_row_with_its_split_and_never_merges_them(small_runs, tiny_protocol, tmp_path):
    lsh, sdh, flt, deep = small_runs
    older_deep = _older(deep, bits=32, mode="frozen, 20 ep")
    page = write_results_page([lsh, flt, deep, older_deep, _older(sdh)], [], tmp_path / "results.md", "x",
                              run_all.machine(), ["tiny-cars"], [16, 32], splits={"tiny-cars": tiny_protocol})
    text = page.read_text()
    # gap+hashnet: the current 16-bit run and the older 32-bit run are two rows, never one
    map_table = text.split("**mAP@all**")[1].split("**P@20**")[0]
    assert _rows(map_table, "gap+hashnet") == [
        f"| gap+hashnet | frozen, 2 ep; current protocol | {deep['figures']['map_all']:.4f} | — |",
        f"| gap+hashnet | frozen, 20 ep; older protocol | — | {older_deep['figures']['map_all']:.4f} |"]
    assert _rows(map_table, "sdh") == [f"| sdh | frozen features; older protocol | "
                                       f"{sdh['figures']['map_all']:.4f} | — |"]
    table_rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    marked = [line for line in table_rows if "protocol |" in line and not line.startswith("| protocol")]
    assert marked and not any("current protocol" in line and "older protocol" in line for line in table_rows)
    assert "*older protocol* (2 runs" in text
    # the protocol table gives both splits' sizes; the page JSON keeps the records unmarked
    assert any(line.startswith("| tiny-cars | cars-bmw13 | 12 | 24 | 16 | 0 |") for line in table_rows)
    assert any(line.startswith("| tiny-cars (older protocol) | cars-bmw13 | 12 | 24 | 24 | — |") for line in table_rows)
    saved = json.loads((tmp_path / "results" / "tiny-cars.json").read_text())["records"]
    assert [r["mode"] for r in saved] == ["frozen features", "frozen features", "frozen, 2 ep", "frozen, 20 ep",
                                          "frozen features"]


def test_query_time_table_puts_float_scans_beside_coarse_to_fine(small_runs):
    lsh, sdh, flt, deep = small_runs
    table = query_time_table(small_runs, 16).splitlines()
    assert table[0].startswith("| method | mode | searched | mAP@all | linear cosine scan ms/query | "
                               "coarse-to-fine ms/query |")
    assert table[2].startswith(f"| float | frozen features | {flt['costs']['vector_dim']} floats | "
                               f"{flt['figures']['map_all']:.4f} | {flt['times']['linear_ms_per_query']:.2f} | — |")
    row = next(line for line in table if line.startswith("| lsh |"))
    assert row.startswith(f"| lsh | frozen features | 16 bits, then 1280 floats | {lsh['figures']['map_all']:.4f} | "
                          f"{lsh['times']['linear_ms_per_query']:.2f} | "
                          f"{lsh['times']['coarse_to_fine_ms_per_query']:.2f} |")
    assert query_time_table([r for r in small_runs if r["bits"] == 16], 32) is None


def test_reuse_caches_current_runs_and_carries_older_ones(small_runs, tmp_path):
    cars = get_protocol("cars-bmw13")
    named = {**small_runs[0]["protocol"], "name": "cars-bmw13", "seed": 0, "split_digest": split_digest(cars)}
    current = {**small_runs[0], "protocol": named}                          # lsh 16, current split
    older_sdh = {**small_runs[1], "protocol": {**named, "split_digest": "0ld5p1it"}}
    older_lsh = {**current, "protocol": older_sdh["protocol"], "created": "2026-11-22T17:10:44+00:00"}
    folder = tmp_path / "page"
    folder.mkdir()
    (folder / "cars-bmw13.json").write_text(json.dumps({"records": [current, older_sdh, older_lsh]}))
    cache = tmp_path / "cache"
    carried = run_all.reuse(folder, {"cars-bmw13": cars}, cache)
    assert [r["method"] for r in carried] == ["sdh", "lsh"]
    assert cached_record(MethodSpec.parse("lsh"), cars, 16, cache_dir=cache)["figures"] == current["figures"]
    # lsh 16 exists on the current split (in the cache): it replaces the older run; sdh stays, marked older;
    # an older run at a code length the page does not show is left out
    shown = run_all.carried_rows(carried, [], {"cars-bmw13": cars}, (16,), cache)
    assert [(r["method"], "split_digest" in r["protocol"] and r["protocol"]["split_digest"] == split_digest(cars))
            for r in shown] == [("sdh", False), ("lsh", True)]
    assert run_all.carried_rows(carried, [], {"cars-bmw13": cars}, (32,), cache) == []
    # the page from the cache alone: the current lsh run, the older sdh run carried and marked, nothing run
    page = tmp_path / "out" / "results.md"
    assert run_all.main(["--cached-only", "--reuse", str(folder), "--protocols", "cars-bmw13", "--methods", "lsh",
                         "sdh", "--bits", "16", "--cache", str(cache), "--out", str(page)]) == 0
    text = page.read_text()
    assert _rows(text, "lsh")[0] == f"| lsh | frozen features; current protocol | {current['figures']['map_all']:.4f} |"
    assert _rows(text, "sdh")[0] == f"| sdh | frozen features; older protocol | {older_sdh['figures']['map_all']:.4f} |"


def test_epochs_and_schedule_per_protocol_and_method():
    args = run_all.parse_args(["--protocols", "cars-bmw13", "cars-bmw13-unseen", "--bits", "48", "--methods",
                               "gap+csq", "bilinear+hashnet", "itq", "--epochs", "20", "--epochs-for", "gap+csq=60",
                               "--epochs-for", "cars-bmw13:gap+csq=120", "--schedule-for", "bilinear+hashnet=plateau",
                               "--validate-every-for", "cars-bmw13-unseen:bilinear+hashnet=2"])
    specs = {(protocol, spec.name): spec for protocol, spec, _ in run_all.plan(args)}
    assert specs["cars-bmw13", "gap+csq"].epochs == 120 and specs["cars-bmw13-unseen", "gap+csq"].epochs == 60
    bilinear = specs["cars-bmw13-unseen", "bilinear+hashnet"]
    assert (bilinear.epochs, bilinear.schedule, bilinear.validate_every) == (20, "plateau", 2)
    assert specs["cars-bmw13", "gap+csq"].schedule == "cosine" and specs["cars-bmw13", "gap+csq"].validate_every == 0
    assert specs["cars-bmw13", "itq"].kind == "shallow"
    for bad in (["--epochs-for", "nowhere:gap+csq=5"], ["--schedule-for", "gap+csq=sometimes"],
                ["--epochs-for", "cars-bmw13:itq=5"], ["--validate-every-for", "nowhere:gap+csq=2"]):
        with pytest.raises(SystemExit, match=bad[0]):
            run_all.parse_args(bad)
