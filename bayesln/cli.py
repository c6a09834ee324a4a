"""The ``bayesln`` command: thin wrappers over the Python API.

Exit codes: 0 success; 1 a fit failed the diagnostics gate (unless allowed);
2 bad input (data, spec, arguments, run folder, output location), with a one-paragraph
message on stderr; 3 an internal error (a bug): one line on stderr and the traceback in a
log file whose path is printed; 128 + signal (130 / 143) when interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer

from bayesln.runs import Interrupted, interrupts_deferred, request_stop, stop_requested

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Bayesian evidence synthesis for binary trial outcomes (tacrolimus in lupus nephritis).",
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(no_args_is_help=True, help="Validate and show arm-level trial data.")
app.add_typer(data_app, name="data")

EXIT_OK, EXIT_GATE, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


class InputError(Exception):
    """Bad input from the user: reported as one paragraph, exit code 2."""


def _on_signal(signum, frame) -> None:
    """SIGINT / SIGTERM: stop, clean up, write nothing (see bayesln.runs.Interrupted)."""
    if stop_requested() is not None:  # already unwinding: let the cleanup finish
        return
    request_stop(signum)
    if interrupts_deferred():  # writing a run folder: it is discarded before the commit
        return
    raise Interrupted(signum)


def _install_signal_handlers() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    default_hook = sys.unraisablehook

    def quiet_interrupt(unraisable) -> None:
        # the handler ran inside a finaliser, where its exception is dropped (and printed);
        # the stop flag it set still stops the run before anything is written
        if not isinstance(unraisable.exc_value, Interrupted):
            default_hook(unraisable)

    sys.unraisablehook = quiet_interrupt


def _interrupted_exit(signum: int) -> None:
    name = signal.Signals(signum).name
    typer.echo(f"error: interrupted by {name}; stopped without writing results (an existing run folder is unchanged)", err=True)
    raise typer.Exit(128 + signum)


def _fail(message: str, code: int = EXIT_INPUT) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _log_folder() -> Path:
    """Where tracebacks of internal errors go: ``$BAYESLN_LOG_DIR``, else
    ``$XDG_CACHE_HOME/bayesln/logs`` (``~/.cache/bayesln/logs``)."""
    env = os.environ.get("BAYESLN_LOG_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bayesln" / "logs"


def _internal_error(exc: BaseException) -> None:
    """A failure that is not the user's input: one line on stderr, the traceback in a log
    file whose path is printed, exit 3 (never a raw traceback)."""
    import tempfile
    import time
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    header = f"bayesln {' '.join(sys.argv[1:])}\n{time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}\n\n"
    where = None
    for folder in (_log_folder(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f"crash-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".log", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(header + text)
            where = name
            break
        except OSError:
            continue
    summary = " ".join(f"{type(exc).__name__}: {exc}".split())
    if len(summary) > 200:
        summary = summary[:200] + "…"
    log = f"the traceback is in {where}" if where else "the traceback could not be written to a log file"
    typer.echo(f"error: internal error ({summary}); this is a bug in bayesln, not in your input - {log}; "
               "please report it with that file", err=True)
    raise typer.Exit(EXIT_INTERNAL)


def _split(labels: str) -> list[str]:
    """Comma-separated labels of a command-line option."""
    return [x for x in labels.split(",") if x]


def _check_format(fmt: str, allowed: tuple[str, ...] = ("table", "csv", "json")) -> None:
    if fmt not in allowed:
        raise InputError(f"--format must be {', '.join(allowed[:-1])} or {allowed[-1]}, not {fmt!r}")


def _check_sampler_options(draws=None, tune=None, chains=None, seed=None) -> None:
    """Sampler overrides from the command line, refused before anything is loaded; the
    ranges are the spec's (``bayesln.spec.SAMPLER_RANGES``)."""
    from bayesln.spec import SAMPLER_RANGES

    for key, v in (("draws", draws), ("tune", tune), ("chains", chains), ("seed", seed)):
        if v is None:
            continue
        lo, hi = SAMPLER_RANGES[key]
        if not lo <= v <= hi:
            kind = "a positive integer" if lo >= 1 else "an integer"
            raise InputError(f"--{key} must be {kind} from {lo:,} to {hi:,}, not {v}")


def _load_data(source: str, **kw):
    """A bundled dataset name or a CSV path."""
    import bayesln

    if source in bayesln.list_datasets() and not Path(source).exists():
        return bayesln.load_dataset(source)
    p = Path(source)
    if not p.exists() and not source.lower().endswith((".csv", ".txt")):
        raise InputError(
            f"{source!r} is neither a bundled dataset ({', '.join(bayesln.list_datasets())}) nor an existing CSV file"
        )
    return bayesln.read_trials(p, **kw)


def _input_errors():
    from bayesln.data import ContrastError, DataValidationError

    from bayesln.runs import RunError

    errs: list[type[BaseException]] = [InputError, DataValidationError, ContrastError, FileNotFoundError, RunError,
                                       PermissionError, IsADirectoryError, NotADirectoryError]
    try:
        from bayesln.spec import SpecError

        errs.append(SpecError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errs)


def _run(fn):
    """Run a command body, mapping input errors to exit 2 with one paragraph and a fit
    refused for its failed gate to exit 1."""
    from bayesln.gates import GateFailedError

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            return fn()
    except typer.Exit:
        raise
    except Interrupted as exc:
        _interrupted_exit(exc.signum)
    except GateFailedError as exc:
        _fail(str(exc).replace("allow_failed_gate=True / --allow-failed-gate", "--allow-failed-gate"), EXIT_GATE)
    except _input_errors() as exc:
        _fail(str(exc))
    except ValueError as exc:  # the API's argument errors (unknown outcome, label, ...)
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - anything else is a bug: exit 3 with a log file
        _internal_error(exc)


# --------------------------------------------------------------------------- data
@data_app.command("validate")
def data_validate(
    path: str = typer.Argument(..., help="CSV file in the arm-level format (or a bundled dataset name)."),
    require_contrast: bool = typer.Option(False, "--require-contrast", help="Every study must have at least two arms."),
    outcome: Optional[str] = typer.Option(None, "--outcome", help="Wide 2x2 files without an 'outcome' column: the outcome."),
    treat: Optional[str] = typer.Option(None, "--treat", help="Wide files without 'treatment_t': the treated arms' label."),
    control: Optional[str] = typer.Option(None, "--control", help="Wide files without 'treatment_c': the control arms' label."),
    extra_outcome: list[str] = typer.Option([], "--extra-outcome", help="Accept an outcome label not in the vocabulary."),
    extra_treatment: list[str] = typer.Option([], "--extra-treatment", help="Accept a treatment label not in the vocabulary."),
) -> None:
    """Validate a file; exit 0 when valid, 2 with every problem on stderr when not."""

    def body():
        import bayesln

        if path in bayesln.list_datasets() and not Path(path).exists():
            td = bayesln.load_dataset(path)
        else:
            td = bayesln.read_trials(
                path, extra_outcomes=extra_outcome, extra_treatments=extra_treatment, require_contrast=require_contrast,
                outcome=outcome, treat=treat, control=control,
            )
        k = len(td.studies)
        known = td.outcomes.dropna(subset=["events", "n"])
        typer.echo(
            f"{path}: valid — {k} studies, {len(td.arms)} arms, {len(known)} known counts "
            f"({known['study'].nunique()} studies with outcome counts)"
        )

    _run(body)


@data_app.command("show")
def data_show(
    source: str = typer.Argument(..., help="Bundled dataset name (e.g. tacrolimus_ln) or CSV path."),
    fmt: str = typer.Option("table", "--format", help="table | csv | json | wide"),
    treat: str = typer.Option("tac", "--treat", help="--format wide: treatment labels of the treated side (comma-separated)."),
    control: Optional[str] = typer.Option(None, "--control", help="--format wide: comparator labels (default: every other arm)."),
) -> None:
    """Print a dataset. The CSV output is the documented arm-level format and the wide output
    the 2x2 layout (one row per study and outcome): both are valid input."""

    def body():
        _check_format(fmt, ("table", "csv", "json", "wide"))
        td = _load_data(source)
        if fmt == "wide":
            sys.stdout.write(td.to_wide_csv_text(_split(treat), None if control is None else _split(control)))
        elif fmt == "csv":
            sys.stdout.write(td.to_csv_text())
        elif fmt == "json":
            import pandas as pd

            long = td.long()
            recs = [{k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)) for k, v in r.items()} for r in long.to_dict("records")]
            typer.echo(json.dumps(recs, indent=1, ensure_ascii=False))
        else:
            import pandas as pd

            with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 500):
                typer.echo(repr(td))
                typer.echo(td.describe().to_string())

    _run(body)


# --------------------------------------------------------------------------- frequentist
@app.command("frequentist")
def frequentist(
    data: str = typer.Argument(..., help="Bundled dataset name or CSV path."),
    outcome: str = typer.Option(..., "--outcome", help="Outcome, e.g. total_response."),
    treat: str = typer.Option("tac", "--treat", help="Treatment labels of the experimental side (comma-separated)."),
    control: Optional[str] = typer.Option(None, "--control", help="Comparator labels (comma-separated); default: every other arm."),
    measure: str = typer.Option("RR", "--measure", help="RR | OR | RD"),
    method: str = typer.Option("mh", "--method", help="mh | iv | peto | dl | reml | pm"),
    hksj: bool = typer.Option(False, "--hksj", help="Hartung–Knapp–Sidik–Jonkman interval (random effects)."),
    subgroup: Optional[str] = typer.Option(None, "--subgroup", help="Column to split by, e.g. regimen."),
    phase: Optional[str] = typer.Option(None, "--phase", help="Only studies of this phase (induction | maintenance)."),
    fmt: str = typer.Option("table", "--format", help="table | csv | json"),
) -> None:
    """Frequentist meta-analysis (Mantel–Haenszel, inverse variance, DL/REML/PM), matching metafor."""

    def body():
        from bayesln.frequentist.command import frequentist_command

        text = frequentist_command(
            data, outcome, _split(treat), None if control is None else _split(control),
            measure=measure, method=method, hksj=hksj, subgroup=subgroup, fmt=fmt, phase=phase,
        )
        typer.echo(text)

    _run(body)


# --------------------------------------------------------------------------- bias
@app.command("bias")
def bias(
    data: str = typer.Argument(..., help="Bundled dataset name or CSV path."),
    outcome: str = typer.Option(..., "--outcome", help="Outcome, e.g. total_response."),
    treat: str = typer.Option("tac", "--treat", help="Treatment labels of the experimental side (comma-separated)."),
    control: Optional[str] = typer.Option(None, "--control", help="Comparator labels (comma-separated); default: every other arm."),
    measure: str = typer.Option("RR", "--measure", help="RR | OR"),
    model: str = typer.Option("rma", "--model", help="Egger test: rma (random-effects meta-regression, z) | lm (classical weighted regression, t)."),
    predictor: str = typer.Option("sei", "--predictor", help="Egger test predictor: sei (standard error) | ninv (1/total sample size)."),
    method: str = typer.Option("reml", "--method", help="tau^2 estimator of the Egger model and trim-and-fill: reml | dl | iv."),
    estimator: str = typer.Option("L0", "--estimator", help="Trim-and-fill estimator: L0 | R0."),
    side: Optional[str] = typer.Option(None, "--side", help="Side of the missing studies: left | right (default: metafor's rule)."),
    phase: Optional[str] = typer.Option(None, "--phase", help="Only studies of this phase (induction | maintenance)."),
    fmt: str = typer.Option("table", "--format", help="table | json"),
) -> None:
    """Small-study effects: Egger's regression test, Begg's rank test and trim-and-fill, matching metafor."""

    def body():
        from bayesln.frequentist.bias_command import bias_command

        text = bias_command(
            data, outcome, _split(treat), None if control is None else _split(control),
            measure=measure, fmt=fmt, model=model, predictor=predictor, method=method, estimator=estimator,
            side=side, phase=phase,
        )
        typer.echo(text, nl=False)

    _run(body)


# --------------------------------------------------------------------------- fit / summarize
@app.command("fit")
def fit(
    spec: str = typer.Argument(..., help="Analysis spec, e.g. models/total_response.toml."),
    out: Path = typer.Option(Path("runs"), "--out", help="Folder that receives the run folder <out>/<name>/."),
    data: Optional[str] = typer.Option(None, "--data", help="Run the spec on another dataset (bundled name or CSV)."),
    name: Optional[str] = typer.Option(None, "--name", help="Run folder name (default: the spec's analysis.name)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the spec's seed."),
    draws: Optional[int] = typer.Option(None, "--draws", help="Override posterior draws per chain."),
    tune: Optional[int] = typer.Option(None, "--tune", help="Override tuning steps per chain."),
    chains: Optional[int] = typer.Option(None, "--chains", help="Override the number of chains."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress display and no summary; only errors."),
    allow_failed_gate: bool = typer.Option(False, "--allow-failed-gate", help="Exit 0 even when the diagnostics gate fails."),
) -> None:
    """Fit a spec and write an atomic run folder (idata.nc, summary, diagnostics, comparison, figures)."""

    def body():
        from bayesln import _kernelwarm

        _kernelwarm.start()  # a machine's first fit: compile the core kernel on the other core meanwhile
        from bayesln.analysis import run_analysis, save_analysis
        from bayesln.data import ContrastError, DataValidationError
        from bayesln.runs import RunError, check_output_parent, run_path
        from bayesln.spec import SpecError, load_spec

        _check_sampler_options(draws, tune, chains, seed)
        sp = load_spec(spec)
        try:  # a bad --name / --out fails now, not after sampling
            run_path(out, name or sp.name)
        except RunError as exc:
            raise InputError(f"--name: {exc}" if name else str(exc)) from None
        check_output_parent(out)
        td = _fit_data(sp, spec, data)
        if not quiet:
            typer.echo(f"fitting {sp.name} ({sp.outcome}) …", err=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                analysis = run_analysis(sp, data=td, seed=seed, draws=draws, tune=tune, chains=chains,
                                        progressbar=None if not quiet else False)
        except (SpecError, RunError, DataValidationError, ContrastError):
            raise
        except ValueError as exc:  # the model cannot be built for this spec and data
            raise InputError(f"{spec}: {exc}") from None
        if stop_requested() is not None:  # the interruption was swallowed somewhere
            raise Interrupted(stop_requested())
        path = save_analysis(analysis, out, name=name)
        if not quiet:
            typer.echo(analysis.text_summary())
            typer.echo(f"results written to {path}/ (summary.csv, comparison.csv, diagnostics.json, idata.nc, figures/)")
            if analysis.status == "ok" and sp.model.family == "core":
                typer.echo(f"next: `bayesln check {path}` (frequentist comparison, PPC, LOO, prior sensitivity)")
        if analysis.status != "ok":
            typer.echo(f"warning: {sp.name}: the diagnostics gate failed: {'; '.join(analysis.result.diagnostics.problems)}", err=True)
            if not allow_failed_gate:
                raise typer.Exit(EXIT_GATE)

    _run(body)


def _fit_data(sp, spec_arg: str, data: str | None):
    """The fit's data (``--data`` or the spec's ``data.source``), with the spec's
    treatment labels checked against it; errors name where the data came from."""
    from bayesln.analysis import load_data_source, select_for_spec

    src, where = (data, "--data") if data is not None else (sp.data_source(), f"{spec_arg}: key 'data.source'")
    try:
        td = load_data_source(src, sp)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise InputError(f"{where}: {exc}") from None
    if sp.model.family == "network":  # nodes, not a treated side: checked by the network design
        return td
    labels = set()
    arms = select_for_spec(td, sp).arms
    for col in ("treatment", "node"):
        if col in arms.columns:
            labels |= {str(x) for x in arms[col].dropna()}
    bad = [t for t in sp.model.treat if t not in labels]
    if bad:
        raise InputError(
            f"{spec_arg}: invalid spec: key 'model.treat': unknown treatment label(s) {', '.join(map(repr, bad))}; "
            f"labels in the selected data: {', '.join(sorted(labels))}"
        )
    return td


@app.command("summarize")
def summarize(
    run: Path = typer.Argument(..., help="A run folder written by `bayesln fit`."),
    fmt: str = typer.Option("table", "--format", help="table | csv | json"),
) -> None:
    """Print a run's posterior summary, diagnostics verdict and comparison."""

    def body():
        from bayesln.analysis import load_run, summary_text

        _check_format(fmt)
        r = load_run(run)
        if fmt == "csv":
            sys.stdout.write(r.summary.to_csv(index=False))
        elif fmt == "json":
            typer.echo((run / "summary.json").read_text(encoding="utf-8"))
        else:
            typer.echo(summary_text(r.spec.name, r.spec.outcome, r.summary, r.diagnostics, r.comparison))

    _run(body)


# --------------------------------------------------------------------------- check / predict
@app.command("check")
def check(
    run: Path = typer.Argument(..., help="A run folder written by `bayesln fit` (core family)."),
    fmt: str = typer.Option("table", "--format", help="table | json"),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the check tables and figures into this folder."),
    draws: Optional[int] = typer.Option(None, "--draws", help="Draws per chain of the refits (default: the run's)."),
    tune: Optional[int] = typer.Option(None, "--tune", help="Tuning steps per chain of the refits."),
    chains: Optional[int] = typer.Option(None, "--chains", help="Chains of the refits."),
    alpha: float = typer.Option(0.05, "--alpha", help="Level of the PPC flags (two-sided Bayesian p-value)."),
    no_sensitivity: bool = typer.Option(False, "--no-sensitivity", help="Skip the prior-sensitivity refits."),
    no_models: bool = typer.Option(False, "--no-models", help="Skip the model comparison refits."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress display."),
    allow_failed_gate: bool = typer.Option(
        False, "--allow-failed-gate",
        help="Check a run that failed its diagnostics gate (default: refused, exit 1); every output carries the warning."),
) -> None:
    """Check a run: Bayesian vs frequentist vs published RRs, posterior predictive checks,
    leave-one-study-out (PSIS-LOO with exact refits), prior sensitivity, model comparison.
    A run that failed its diagnostics gate is refused (exit 1) unless --allow-failed-gate."""

    def body():
        from bayesln.checks.command import check_command, run_checks, format_report

        _check_sampler_options(draws, tune, chains)
        _check_format(fmt, ("table", "json"))
        if not run.is_dir():
            raise InputError(f"{run}: no such run folder")
        tty = sys.stderr.isatty()

        def show(i: int, n: int | None, label: str) -> None:
            # one labelled line that updates in place on a terminal; one line per refit when piped
            text = f"refit {i}{'' if n is None else f' of {n}'}: {label}"
            if tty:
                sys.stderr.write("\r\033[K" + text)
                sys.stderr.flush()
            else:
                typer.echo(text, err=True)

        opts = dict(alpha=alpha, draws=draws, tune=tune, chains=chains, sensitivity=not no_sensitivity,
                    models=not no_models, progressbar=False, allow_failed_gate=allow_failed_gate,
                    progress=None if quiet else show)
        if out is None:
            text = check_command(str(run), fmt, **opts)
            if tty and not quiet:
                sys.stderr.write("\r\033[K")
            typer.echo(text, nl=False)
            return
        from bayesln.checks.command import check_destination

        check_destination(out)  # before any refit: never into a run folder, a file or an unwritable place
        rep = run_checks(run, **opts)
        if tty and not quiet:
            sys.stderr.write("\r\033[K")
        if stop_requested() is not None:
            raise Interrupted(stop_requested())
        where = rep.save(out)
        if fmt == "json":
            typer.echo(json.dumps(rep.to_dict(), indent=2, allow_nan=False, default=str))
        else:
            typer.echo(format_report(rep), nl=False)
        if not quiet:
            typer.echo(f"check tables written to {where}/", err=True)

    _run(body)


@app.command("predict")
def predict(
    run_or_spec: str = typer.Argument(..., help="A run folder of `bayesln fit`, or a spec (fitted first, as `bayesln fit` does); family core or ordinal."),
    target: Optional[str] = typer.Option(None, "--target", help="One target name (default: every target of the spec)."),
    fmt: str = typer.Option("table", "--format", help="table | csv | json"),
    seed: Optional[int] = typer.Option(
        None, "--seed", help="Seed of the predictive draws (default: the spec's); with a SPEC also the fit's seed."),
    pred_draws: Optional[int] = typer.Option(
        None, "--pred-draws", help="Posterior draws used for the predictions, a seeded subsample (default: all)."),
    draws: Optional[int] = typer.Option(
        None, "--draws", help="SPEC: override posterior draws per chain of the fit. On a RUN: deprecated alias of --pred-draws."),
    tune: Optional[int] = typer.Option(None, "--tune", help="SPEC only: override tuning steps per chain."),
    chains: Optional[int] = typer.Option(None, "--chains", help="SPEC only: override the number of chains."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="SPEC only: also write the fitted run folder <out>/<name>/, atomically, as `bayesln fit` does."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress display and no status messages; only the predictions and errors."),
    allow_failed_gate: bool = typer.Option(
        False, "--allow-failed-gate",
        help="Predict from a fit (SPEC) or run (RUN) that failed its diagnostics gate, exit 0, with the warning in "
             "every output (default: refused, exit 1)."),
    margin: Optional[float] = typer.Option(None, "--margin", help="Clinical margin for P(RD > margin)."),
    ci: float = typer.Option(0.95, "--ci", help="Interval level, in (0, 1)."),
    targets_file: Optional[str] = typer.Option(None, "--targets-file", help="A targets TOML file (default: beside the spec, then models/targets.toml)."),
    evidence: Optional[str] = typer.Option(
        None, "--evidence",
        help="Also predict under evidence-informed priors for the unidentified modifiers (robust MAP priors from "
             "external evidence: 'external_ln' is bundled, or a folder with evidence.csv, sources.csv, "
             "modifiers.toml), side by side with the default priors, with the source rows."),
) -> None:
    """Posterior predictive response / adverse-event probabilities for target populations,
    with the extrapolation report (covariates outside the trials, prior-to-posterior
    contraction, sensitivity to the prior on unidentified effect modifiers). A core run gives one outcome per
    target; an ordinal run (models/ordinal_response.toml) gives coherent P(CR), P(PR), P(CR or PR) and the
    RD / RR / OR / NNT of CR and of CR-or-PR.

    SPEC: the model is fitted first, as `bayesln fit` does (--draws, --tune, --chains, --seed; a progress display unless --quiet; --out DIR keeps the run folder, written even when the fit fails its gate).

    RUN: nothing is refitted; --tune, --chains and --out are refused.

    A fit or run that failed its diagnostics gate is refused with exit 1 and the reason, unless --allow-failed-gate: then the predictions are printed with the warning in every output (each table row, the text, the JSON) and the exit code is 0.

    --pred-draws is the number of posterior draws the predictions use (it was --draws; on a RUN --draws still means that, with a deprecation warning)."""

    def body():
        from bayesln.predict.command import run_predict

        _check_format(fmt)
        if not 0 < ci < 1:
            raise InputError(f"--ci must be in (0, 1), not {ci}")
        if pred_draws is not None and pred_draws < 1:
            raise InputError(f"--pred-draws must be a positive integer, not {pred_draws}")
        _check_sampler_options(draws=draws, tune=tune, chains=chains, seed=seed)
        is_run = Path(run_or_spec).is_dir()
        fit_draws, use_draws = draws, pred_draws
        if is_run:
            spec_only = [f for f, v in (("--tune", tune), ("--chains", chains), ("--out", out)) if v is not None]
            if spec_only:
                raise InputError(f"{run_or_spec} is a run folder, and {', '.join(spec_only)} only work when predict "
                                 "fits a SPEC (refit with `bayesln fit SPEC` to change the sampler settings)")
            if draws is not None:
                if pred_draws is not None:
                    raise InputError(f"{run_or_spec} is a run folder: give --pred-draws only (--draws is its "
                                     "deprecated alias here, and --draws of a fit applies only to a SPEC)")
                typer.echo("warning: on a run folder --draws is deprecated; it sets the posterior draws used for the "
                           "predictions, now --pred-draws (with a SPEC, --draws sets the fit's draws per chain)", err=True)
                fit_draws, use_draws = None, draws
        elif out is not None:
            from bayesln.runs import check_output_parent

            check_output_parent(out)
        res = run_predict(run_or_spec, target, fmt, seed=seed, draws=use_draws, margin=margin, ci=ci,
                          targets_file=targets_file, fit_draws=fit_draws, fit_tune=tune, fit_chains=chains, out=out,
                          progressbar=None if not quiet else False,
                          log=None if quiet else (lambda msg: typer.echo(msg, err=True)),
                          allow_failed_gate=allow_failed_gate, evidence=evidence)
        typer.echo(res.text, nl=not res.text.endswith("\n"))
        if res.status != "ok":  # only reached with --allow-failed-gate
            typer.echo(f"warning: {run_or_spec}: the diagnostics gate failed: {'; '.join(res.problems)}", err=True)

    _run(body)


# --------------------------------------------------------------------------- report
@app.command("report")
def report(
    runs: list[Path] = typer.Argument(..., help="One or more run folders written by `bayesln fit`."),
    out: Path = typer.Option(Path("report.html"), "--out", help="The HTML file to write."),
    title: Optional[str] = typer.Option(None, "--title", help="Title of the page (default: the run names)."),
) -> None:
    """One self-contained HTML report (no script, no network) of one or more runs: question,
    data and provenance, forest plots, Bayesian vs frequentist vs published, small-study
    effects, predictions with extrapolation warnings, Summary of Findings, diagnostics, the
    exact spec and versions. Every run folder is verified against its hashes first."""

    def body():
        from bayesln.report.html import write_report
        from bayesln.runs import check_output_parent
        from bayesln.spec import MAX_TITLE_CHARS

        if title is not None and len(title) > MAX_TITLE_CHARS:
            raise InputError(f"--title: longer than {MAX_TITLE_CHARS} characters")
        if out.exists() and out.is_dir():
            raise InputError(f"--out {out}: is a folder; give the HTML file to write")
        check_output_parent(out.parent if str(out.parent) else Path("."), "--out")
        path = write_report(runs, out, title=title)
        typer.echo(f"report written to {path}", err=True)

    _run(body)


def _click_exceptions():
    """The click exception classes typer raises (typer >= 0.2x vendors click as
    ``typer._click``; older ones use click itself)."""
    try:
        from typer._click import exceptions as ex
    except ImportError:  # pragma: no cover - depends on the typer version
        from click import exceptions as ex
    return ex


def main() -> None:  # console-script entry point
    cex = _click_exceptions()
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    _install_signal_handlers()
    try:
        rv = app(standalone_mode=False)
    except Interrupted as exc:  # outside a command body (argument parsing, imports)
        typer.echo(f"error: interrupted by {signal.Signals(exc.signum).name}", err=True)
        sys.exit(128 + exc.signum)
    except cex.NoArgsIsHelpError as exc:  # `bayesln` / `bayesln data` alone: the help
        exc.show()
        sys.exit(EXIT_INPUT)
    except cex.UsageError as exc:
        # one paragraph like every other bad input (click would draw a box)
        where = exc.ctx.command_path if exc.ctx is not None else "bayesln"
        msg = " ".join(exc.format_message().split())
        typer.echo(f"error: {where}: {msg} (see '{where} --help')", err=True)
        sys.exit(EXIT_INPUT)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - outside a command body (imports, parsing)
        try:
            _internal_error(exc)
        except typer.Exit as ex:
            sys.exit(ex.exit_code)
    sys.exit(rv if isinstance(rv, int) else EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    main()
