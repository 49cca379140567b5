"""The Typer application every command module registers on."""

import typer

app = typer.Typer(
    name="cxm",
    help="Feedback mining and churn risk for CX teams (English, Swedish, Polish), offline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
train_app = typer.Typer(help="Train the models cxm ships defaults for.", no_args_is_help=True)
app.add_typer(train_app, name="train")


def fail(message: str) -> typer.Exit:
    """Say ``error: message`` on stderr; the exit (code 2: unusable input) to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)
