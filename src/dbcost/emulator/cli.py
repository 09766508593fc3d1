"""``dbcost emulator serve``: run the Cost Explorer emulator in the foreground.

It prints exactly one line on stdout, the bound URL (``http://127.0.0.1:PORT``), flushed at once, so a
script or a test can start it with ``--port 0`` and read where it listens. It serves until SIGINT or
SIGTERM and exits 0. A bad option value is one line on stderr and exit code 2, like every other usage
error of dbcost.
"""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer

from dbcost.calendar import RESTATEMENT_GRACE_DAYS
from dbcost.emulator.config import EmulatorConfig, parse_today

__all__ = ["app"]

app = typer.Typer(
    name="emulator",
    help="A local AWS Cost Explorer look-alike (AWS JSON 1.1) backed by a synthetic database fleet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """A local AWS Cost Explorer look-alike for tests, benchmarks and demos.

    Point any AWS SDK at the printed URL (endpoint override); admin endpoints live under /_emulator/.
    """


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind. Keep it on loopback.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind; 0 picks a free port (the URL line tells which).")] = 0,
    seed: Annotated[int, typer.Option(help="Fleet seed: the same seed gives the same numbers.")] = 7,
    clusters: Annotated[int, typer.Option(help="Number of database clusters in the fleet.")] = 240,
    accounts: Annotated[int, typer.Option(help="Number of linked accounts (12-digit ids).")] = 6,
    today: Annotated[
        str | None,
        typer.Option(
            metavar="YYYY-MM-DD", help="The emulator's date (default: the real UTC date). Data exists before it."
        ),
    ] = None,
    max_rps: Annotated[
        float | None,
        typer.Option(help="Throttle above this many requests a second (LimitExceededException); default off."),
    ] = None,
    burst: Annotated[
        int | None, typer.Option(help="Token-bucket burst for --max-rps (default: max(1, int(max-rps))).")
    ] = None,
    latency_ms: Annotated[float, typer.Option(help="Delay added to every AWS response, in milliseconds.")] = 0.0,
    fault_rate: Annotated[
        float, typer.Option(help="Probability of an HTTP 500/503 answer (InternalServerError or ServiceUnavailable).")
    ] = 0.0,
    drop_rate: Annotated[
        float, typer.Option(help="Probability of closing the connection without any HTTP answer.")
    ] = 0.0,
    malformed_rate: Annotated[
        float,
        typer.Option(help="Share of groups served malformed (NaN, '12,50', '', no Unit, no Metrics, bad Keys)."),
    ] = 0.0,
    page_size: Annotated[int, typer.Option(help="Groups per GetCostAndUsage page (items for lookups).")] = 500,
    token_ttl_s: Annotated[float, typer.Option(help="Seconds a NextPageToken stays valid.")] = 600.0,
    estimated_through_day: Annotated[
        int, typer.Option(help="The previous month stays Estimated (and may be restated) through this day of the "
                               "new month; 0: final on the 1st.")
    ] = RESTATEMENT_GRACE_DAYS,
    no_resource_data: Annotated[
        bool, typer.Option("--no-resource-data",
                           help="Answer GetCostAndUsageWithResources as for a payer that has not opted in to "
                                "resource-level data (DataUnavailableException).")
    ] = False,
) -> None:
    """Serve until SIGINT/SIGTERM; print the bound URL as the only line on stdout."""
    import asyncio  # here, not at module level: the dbcost CLI mounts this app on every start

    try:
        cfg = EmulatorConfig(
            host=host,
            port=port,
            seed=seed,
            clusters=clusters,
            accounts=accounts,
            today=parse_today(today),
            max_rps=max_rps,
            burst=burst,
            latency_ms=latency_ms,
            fault_rate=fault_rate,
            drop_rate=drop_rate,
            malformed_rate=malformed_rate,
            page_size=page_size,
            token_ttl_s=token_ttl_s,
            estimated_through_day=estimated_through_day,
            resource_data_enabled=not no_resource_data,
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        asyncio.run(_serve(cfg))
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None


async def _serve(cfg: EmulatorConfig) -> None:
    import asyncio

    from dbcost.emulator.server import Emulator  # the server (aiohttp.web) only for a command that serves

    # the loop admits requests while the build thread makes answers; a short switch interval hands it the GIL
    # within half a millisecond (Python's default is 5 ms), so a throttle decision waits on no page being built
    sys.setswitchinterval(0.0005)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Emulator(cfg, build_thread=True) as emu:
            print(emu.url, flush=True)  # the one line of stdout: where the emulator listens
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


if __name__ == "__main__":  # pragma: no cover - ``python -m dbcost.emulator.cli serve``
    sys.exit(app())
