"""`tunelab classify MODEL TEXT`: a trained classifier's label and scores (or a regressor's number)."""

from __future__ import annotations

import json

import typer


def classify(
    model: str = typer.Argument(..., help="Run directory, classifier adapter folder or exported classifier folder."),
    text: str = typer.Argument(..., help="The text to classify."),
    pair: str | None = typer.Option(None, "--pair", help="Second text, for models trained on text pairs."),
    as_json: bool = typer.Option(False, "--json", help="Print the answer as JSON (as POST /v1/classify)."),
) -> None:
    """Classify one text with a model trained with `task: classification` (or regression)."""
    from tunelab.serving.classify import load_classifier

    found = load_classifier(model, progress=True).classify(text, pair)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    if found["label"] is None:
        typer.echo(f"value: {found['value']:.4f}")
        return
    typer.echo(f"label: {found['label']}")
    for name, score in sorted(found["scores"].items(), key=lambda item: -item[1]):
        typer.echo(f"  {name:<20} {score:.4f}")


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)
