"""The claims report's header: a training reused by a second comparison ran once and is counted once; the runs'
memory layout is stated."""

from indoor_parsing.tools.claims.report import write_report


def _record(comparison, arm, seed, fingerprint, **extra):
    metrics = {"pixel_acc": 0.5, "mean_acc": 0.4, "mIoU": 0.3, "fwIoU": 0.3}
    return {"comparison": comparison, "arm": arm, "seed": seed, "steps": 3, "seconds": 90.0, "fit_seconds": 60.0,
            "results": {"test": metrics}, "data": {"settings": {}}, "report": True, "fingerprint": fingerprint,
            **extra}  # fmt: skip


def test_total_cpu_time_counts_a_reused_training_once(tmp_path):
    records = [_record("GeoAware", "sem + L_s", s, f"ls{s}") for s in range(2)]
    records += [_record("GeoAware", "GeoAware (full)", s, f"full{s}") for s in range(2)]
    # Table 5's 0 % and 100 % arms are the Table 4 trainings above, copied (same fingerprints), not run again
    records += [_record("GeoAware partial depth", "0 % depth", s, f"ls{s}", reused_from="x") for s in range(2)]
    records += [_record("GeoAware partial depth", "100 % depth", s, f"full{s}", reused_from="x") for s in range(2)]
    records += [_record("GeoAware partial depth", "20 % depth", s, f"d20{s}") for s in range(2)]
    teacher = {"fit_seconds": 120.0, "extract_seconds": 30.0}
    md = write_report(records, tmp_path, seeds=[0, 1], budget=1.0, teacher=teacher)[0].read_text()
    # 6 trainings x 60 s + the teacher's 120 s = 8 min of fits; 6 x 90 s + 150 s = 11.5 min in all
    assert "total CPU time (sum of fit seconds, each training once) 8.0 min" in md
    assert "12 min of training and testing in all" in md


def test_header_states_the_memory_layout_of_the_runs(tmp_path):
    def header(*layouts):
        records = [_record("GeoAware", "sem + L_s", s, f"ls{s}", channels_last=cl) for s, cl in enumerate(layouts)]
        return write_report(records, tmp_path, seeds=[0, 1], budget=1.0)[0].read_text()

    assert "Trainer precision 32-true. " in header(False, False)
    assert "Trainer precision 32-true, channels_last. " in header(True, True)
    assert "Trainer precision 32-true, channels_last in part. " in header(True, False)
