"""``chaoslab report RUN_DIR --format md,html,junit,json``: re-render the reports of any run."""

from __future__ import annotations

from pathlib import Path

import click

from . import FILES


def _formats(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
    chosen = [f.strip() for f in value.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FILES]
    if unknown or not chosen:
        raise click.BadParameter(f"unknown format {', '.join(unknown) or '(none)'}; choose from {','.join(FILES)}")
    return chosen


@click.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--format", "-f", "formats", default="md,html,junit,json", show_default=True, callback=_formats,
    help="Comma-separated report formats.",
)
def report(run_dir: Path, formats: list[str]) -> None:
    """Analyse RUN_DIR (reading only its files), decide its verdict and write its reports into it."""
    if not (run_dir / "journal.jsonl").exists():
        raise click.ClickException(f"{run_dir}: not a run directory (no journal.jsonl)")
    from ..verdict import conclude

    result = conclude(run_dir, formats)
    if len(result.reports) < len(formats):
        raise click.ClickException(f"{run_dir}: {result.reason}")
    for path in result.reports:
        click.echo(str(path))
