"""What preprocessing decided about the user's rows, said where the user looks: the step's output
and its card (the numbers are also in `manifest.json`). Rows are numbered as in every message:
data rows from 1, the header not counted."""
from __future__ import annotations

from typing import Any


def summary_rows(manifest: dict[str, Any], min_count: int) -> list[tuple[str, str]]:
    formats = manifest.get("source_formats", {})
    rows = [("read", f"{n:,} rows from {uri}" + (f" ({formats[uri]['format']})" if uri in formats else ""))
            for uri, n in manifest.get("rows_read_by_source", {}).items()]
    if manifest["bad_rows"]:
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in manifest.get("bad_rows_by_reason", {}).items())
        first = manifest["bad_row_examples"][0]
        rows.append(("dropped as bad", f"{manifest['bad_rows']:,} ({reasons}); first: {first['file']} "
                                       f"row {first['row']}: {first['reason']}"))
    duplicates = manifest["duplicates_exact"] + manifest["duplicates_normalized"]
    if duplicates:
        rows.append(("dropped as duplicates", f"{duplicates:,} ({manifest['duplicates_exact']:,} identical after "
                                              f"cleaning, {manifest['duplicates_normalized']:,} equal up to case, "
                                              f"punctuation and spacing)"))
    for name in manifest.get("dropped_rare_classes", []):
        n = manifest.get("dropped_rare_class_rows", {}).get(name, 0)
        rows.append(("class dropped", f"{name!r}: {n:,} row(s), below data.min_count={min_count}"))
    totals = {name: sum(split["classes"].get(name, 0) for split in manifest["splits"].values())
              for name in manifest["id2label"].values()}
    rows.append(("classes", ", ".join(f"{name} {n:,}" for name, n in totals.items())))
    rows.append(("splits", " · ".join(f"{name} {split['rows']:,}" for name, split in manifest["splits"].items())))
    if manifest.get("augmented_rows"):
        rows.append(("augmented", f"{manifest['augmented_rows']:,} extra training rows"))
    return rows


def summary_text(manifest: dict[str, Any], min_count: int) -> str:
    rows = summary_rows(manifest, min_count)
    width = max(len(k) for k, _ in rows)
    return "data:\n" + "\n".join(f"  {key:<{width}}  {value}" for key, value in rows)


def summary_card(manifest: dict[str, Any], min_count: int) -> list:
    """Metaflow card components: the same rows as a table."""
    from metaflow.cards import Markdown, Table

    return [Markdown(f"# Data: {manifest['rows_kept']:,} rows kept of {manifest['rows_read']:,} read"),
            Table([list(r) for r in summary_rows(manifest, min_count)], headers=["", ""])]
